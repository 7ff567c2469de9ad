"""``fhir-server clients ...`` and ``fhir-server users ...`` on a migrated database."""

from __future__ import annotations

import io
import json
from pathlib import Path

import psycopg
import pytest
from joserfc.jwk import KeySet, RSAKey

from fhir_server.auth.server.hashing import check_password
from fhir_server.cli import main

pytestmark = pytest.mark.xdist_group("auth-server-cli")


@pytest.fixture
def db(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.setenv("LOG_LEVEL", "warning")
    return migrated_url


def test_clients_add_list_remove(db: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clients", "add", "--name", "Conf app", "--kind", "confidential",
                 "--redirect-uri", "https://app.example/cb", "--scope",
                 "openid patient/*.rs"]) == 0
    out = capsys.readouterr().out
    client_id = out.split("client_id: ")[1].split()[0]
    secret = out.split("client_secret: ")[1].split()[0]
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT kind, secret_hash, redirect_uris, scope FROM auth_client"
                           " WHERE client_id = %s", (client_id,)).fetchone()
    assert row is not None and row[0] == "confidential" and secret not in str(row)
    assert row[2] == ["https://app.example/cb"] and row[3] == "openid patient/*.rs"

    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS384"})
    public = tmp_path / "jwks.json"
    public.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    assert main(["clients", "add", "--name", "Backend", "--kind", "backend",
                 "--jwks", str(public)]) == 0
    backend_id = capsys.readouterr().out.split("client_id: ")[1].split()[0]
    private = tmp_path / "private.json"
    private.write_text(json.dumps(KeySet([key]).as_dict(private=True)))
    assert main(["clients", "add", "--name", "Leaky", "--kind", "backend",
                 "--jwks", str(private)]) == 1
    assert main(["clients", "add", "--name", "No keys", "--kind", "backend"]) == 1
    assert main(["clients", "add", "--name", "No uri", "--kind", "public"]) == 1
    capsys.readouterr()

    assert main(["clients", "list"]) == 0
    listing = capsys.readouterr().out
    assert client_id in listing and backend_id in listing and "inline JWKS" in listing
    assert main(["clients", "remove", client_id]) == 0
    assert main(["clients", "remove", client_id]) == 1
    capsys.readouterr()
    assert main(["clients", "list"]) == 0
    assert client_id not in capsys.readouterr().out


def test_users_add_list_disable(db: str, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["users", "add", "nurse1", "--fhir-user", "Practitioner/7",
                 "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "nurse2", "--password-stdin"]) == 1
    assert main(["users", "add", "nurse3", "--fhir-user", "nonsense"]) == 1
    prompts = iter(["typed password", "typed password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(prompts))
    assert main(["users", "add", "doctor"]) == 0
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT password_hash, fhir_user FROM auth_user WHERE"
                           " username = 'nurse1'").fetchone()
    assert row is not None and row[1] == "Practitioner/7"
    assert row[0].startswith("scrypt$") and check_password("a long password", row[0])
    capsys.readouterr()
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "nurse1\tPractitioner/7\tactive" in listing and "doctor" in listing
    assert "nurse2" not in listing
    assert main(["users", "disable", "nurse1"]) == 0
    assert main(["users", "disable", "nobody"]) == 1
    capsys.readouterr()
    main(["users", "list"])
    assert "nurse1\tPractitioner/7\tdisabled" in capsys.readouterr().out
