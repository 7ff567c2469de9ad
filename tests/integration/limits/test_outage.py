"""Database down: once readiness knows (a connection attempt failed), FHIR requests
answer 503 with Retry-After at once instead of waiting DB_POOL_TIMEOUT.

The server reaches PostgreSQL through a TCP proxy of the test's own; closing the proxy
(and every connection through it) is the outage."""

from __future__ import annotations

import socket
import threading
import time
import httpx
import psycopg

from tests.conftest import scratch_database
from tests.integration.limits.conftest import capped_server, free_port


class Proxy:
    """Forwards 127.0.0.1:port to PostgreSQL until closed."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self._open:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._open = False
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def _through(url: str, port: int) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info.update(host="127.0.0.1", port=str(port))
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in info.items() if v is not None})


def test_fhir_answers_503_with_retry_after_at_once_while_the_database_is_down(
        database_url: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    target = (str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432))
    with scratch_database(database_url, "limits_outage") as url:
        proxy = Proxy(target)
        try:
            with capped_server(_through(url, proxy.port), DB_POOL_TIMEOUT="10") as s, \
                    httpx.Client(base_url=s.root, timeout=30) as c:
                assert c.get("/fhir/Patient?name=x").status_code == 200
                proxy.close()
                # the first request may wait DB_POOL_TIMEOUT; once one has failed (or
                # readiness has), the server knows and answers at once
                deadline = time.monotonic() + 30
                # (searches: a read by id may be answered from the Redis cache)
                while c.get("/fhir/Patient?name=x").status_code != 503:
                    assert time.monotonic() < deadline, "no 503 while the database is down"
                    c.get("/api/v1/ready")
                for path in ("/fhir/Patient?name=x", "/fhir/Observation?code=x",
                             "/fhir/_history", "/fhir/Patient/_history"):
                    started = time.monotonic()
                    response = c.get(path)
                    took = time.monotonic() - started
                    assert response.status_code == 503, (path, response.text[:300])
                    assert int(response.headers["retry-after"]) >= 1
                    assert response.json()["issue"][0]["code"] == "transient"
                    assert took < 0.5, (path, took)
                assert c.get("/api/v1/ready").status_code == 503
        finally:
            proxy.close()
