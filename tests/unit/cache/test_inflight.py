"""Requests in flight counted in process (without Redis); Redis: tests/integration/cache."""

from __future__ import annotations

import asyncio

from fhir_server.cache.inflight import InFlight


def test_slots_up_to_the_limit_per_key_and_released() -> None:
    async def main() -> None:
        in_flight = InFlight(None)
        first, second = [await in_flight.acquire("ip:a", 2) for _ in range(2)]
        assert first is not None and second is not None
        assert await in_flight.acquire("ip:a", 2) is None
        assert await in_flight.acquire("ip:b", 2) is not None  # a key of its own
        await first.release()
        third = await in_flight.acquire("ip:a", 2)
        assert third is not None
        await second.release()
        await third.release()
        assert "ip:a" not in in_flight._local  # no key is kept at zero

    asyncio.run(main())
