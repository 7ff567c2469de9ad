"""64-bit hashes of search keys (as HAPI and Blaze do): compact, selective index keys."""

from __future__ import annotations

from functools import lru_cache
from hashlib import blake2b, md5


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


def contained_key(p: int) -> int:
    """The key a contained resource's values of parameter ``p`` are hashed with (token
    and composite hashes), apart from the container's own values of ``p``."""
    return h64(p, "#contained")


def contained_row_key(key: int, local_ref: str) -> int:
    """The ``p`` column of a contained resource's rows: :func:`contained_key` ``key``
    marked with the contained id as referenced (``local_ref`` = ``#med1``).

    Computed in SQL alike from the referring row's ``url`` (see
    ``fhir_server.storage.sql.compile``): the first 8 bytes of ``md5(key || '#med1')``.
    """
    digest = md5(f"{key}{local_ref}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
