"""64-bit hashes of search keys (as HAPI and Blaze do): compact, selective index keys."""

from __future__ import annotations

from functools import lru_cache
from hashlib import blake2b


# Codes, systems and parameters repeat across resources (LOINC codes, statuses): a
# bounded cache saves most of the hashing on the write path.
@lru_cache(maxsize=1 << 16)
def h64(*parts: str | int) -> int:
    """A signed 64-bit hash of the parts (PostgreSQL ``bigint``), stable across processes.

    Parts are joined with a separator that cannot occur in FHIR text (U+001F), so
    ``("a|b", "c")`` and ``("a", "b|c")`` differ.
    """
    joined = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(blake2b(joined, digest_size=8).digest(), "big", signed=True)


def param_key(resource_type: str, code: str) -> int:
    """The ``p`` column: which search parameter of which resource type a row belongs to."""
    return h64(resource_type, code)
