"""RecentWrites without Redis: a caller's write is remembered for the window, per caller."""

from __future__ import annotations

import asyncio

from fhir_server.cache.recent_writes import RecentWrites


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_write_is_remembered_for_the_window_and_for_its_caller_only() -> None:
    clock = Clock()
    recent = RecentWrites(5.0, clock=clock)

    async def main() -> list[bool]:
        seen = [await recent.recent("c:a:")]
        await recent.note("c:a:")
        seen += [await recent.recent("c:a:"), await recent.recent("c:b:")]
        clock.now += 4.9
        seen.append(await recent.recent("c:a:"))
        clock.now += 0.2
        seen.append(await recent.recent("c:a:"))
        return seen

    assert asyncio.run(main()) == [False, True, False, True, False]


def test_a_window_of_zero_remembers_nothing() -> None:
    recent = RecentWrites(0.0)

    async def main() -> bool:
        await recent.note("c:a:")
        return await recent.recent("c:a:")

    assert asyncio.run(main()) is False
