"""DelegatingSession: every call reaches the inner session; the hook runs before observing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fhir_server.service.delegating import DelegatingSession
from fhir_server.service.repository import HistoryQuery, StoredVersion, WriteResult

VERSION = StoredVersion("Patient", "p", 1, datetime(2024, 1, 1, tzinfo=UTC), False, "{}")


class Recorder:
    """A stand-in Session that records each call and answers its name."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any) -> Any:
            self.calls.append((name, args))
            return WriteResult("created", VERSION) if name == "write" else name
        return call


class Hooked(DelegatingSession[Any]):
    async def _before_observing(self) -> None:
        self._inner.calls.append(("hook", ()))


def _all_calls(session: DelegatingSession[Any]) -> list[Any]:
    query: Any = object()

    async def run() -> list[Any]:
        answers = [
            await session.read("Patient", "p"),
            await session.vread("Patient", "p", 1),
            await session.write("Patient", "p", "{}", "PUT", 1, {}),
            await session.history(HistoryQuery()),
            await session.search(query, 10),
            await session.count(query),
            await session.estimate(query),
            await session.include([], [], "Patient", 5),
            await session.revinclude([], [], 5),
        ]
        await session.lock("a", "b")
        return answers

    return asyncio.run(run())


def test_forwards_every_call_with_its_arguments() -> None:
    inner = Recorder()
    answers = _all_calls(DelegatingSession(inner))
    assert [name for name, _ in inner.calls] == [
        "read", "vread", "write", "history", "search", "count",
        "estimate", "include", "revinclude", "lock",
    ]
    assert inner.calls[2] == ("write", ("Patient", "p", "{}", "PUT", 1, {}))
    assert inner.calls[-1] == ("lock", ("a", "b"))
    assert answers[0] == "read" and answers[-1] == "revinclude"


def test_hook_runs_before_every_call_but_write() -> None:
    inner = Recorder()
    _all_calls(Hooked(inner))
    names = [name for name, _ in inner.calls]
    assert names[:5] == ["hook", "read", "hook", "vread", "write"]
    assert names.count("hook") == 9
    assert all(names[i - 1] == "hook" for i, n in enumerate(names) if n not in ("hook", "write"))
