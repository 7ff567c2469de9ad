"""How large a resource grows while a PATCH applies: an upper bound, kept per operation.

A JSON Patch ``copy`` of an element onto its own list doubles it: 21 such operations
(a kilobyte of patch) make gigabytes. So before each operation runs, the bound of the
document's JSON size is raised by what the operation adds and lowered by what it takes
away, and the patch is refused (413 ``too-long``) as soon as the bound passes
``MAX_RESOURCE_BYTES``; the document never gets larger than the limit. Sizes are those of
compact JSON; a member's key and punctuation are counted when added and kept when
removed, so the bound errs on the large side. The patched resource is measured exactly
once more before it is stored, as every written resource is.

Copying costs work in proportion to what is copied even when a later ``remove`` gives
the bytes back, so one patch may copy at most as many bytes as the resource had before
(at least :data:`COPY_FLOOR`): 413 ``too-costly`` past that, as past
:data:`MAX_OPERATIONS` operations.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from fhir_server.errors import PayloadTooLarge

#: most operations one PATCH may have (JSON Patch operations or FHIRPath Patch
#: ``operation`` parameters)
MAX_OPERATIONS = 1000
#: bytes any patch may copy, however small the resource
COPY_FLOOR = 64 * 1024
#: a member's quotes, colon and comma besides its key's characters
_MEMBER = 4


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialize {type(value).__name__}")


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (decimals as written)."""
    return len(orjson.dumps(value, default=_exact))


def check_operation_count(count: int) -> None:
    """413 ``too-costly`` for a patch of more than :data:`MAX_OPERATIONS` operations."""
    if count > MAX_OPERATIONS:
        raise PayloadTooLarge(f"the patch has {count} operations; at most {MAX_OPERATIONS} "
                              "are accepted in one PATCH", code="too-costly")


class SizeBudget:
    """An upper bound of one document's JSON size, checked against ``limit`` (None: no
    limit) before each change."""

    def __init__(self, document: Any, limit: int | None) -> None:
        self.limit = limit
        self.bound = json_size(document) if limit is not None else 0
        self.copied = 0
        self.copy_limit = max(self.bound, COPY_FLOOR)

    def change(self, added: int, removed: int, where: str) -> None:
        """The next operation adds ``added`` bytes and takes ``removed`` away: refuse it
        (413) when the document could then pass the limit."""
        bound = self.bound + added - removed
        if self.limit is not None and bound > self.limit:
            raise PayloadTooLarge(f"{where} would make the resource larger than the limit "
                                  f"of {self.limit} bytes", code="too-long")
        self.bound = bound

    def copy(self, size: int, where: str) -> None:
        """Count ``size`` bytes copied: refuse (413) when the patch copied more than the
        resource's size in all."""
        self.copied += size
        if self.limit is not None and self.copied > self.copy_limit:
            raise PayloadTooLarge(f"{where}: the patch copies more than {self.copy_limit} "
                                  "bytes in all (as much as the resource had)",
                                  code="too-costly")

    def add(self, where: str, key: str | None, *values: Any) -> None:
        """``values`` go in as one new member ``key`` (None: a list item)."""
        self.change(member(key) + sum(json_size(v) for v in values if v is not None), 0,
                    where)

    def replace(self, where: str, old: Any, *values: Any) -> None:
        """``values`` take the place of ``old``."""
        self.change(sum(json_size(v) for v in values if v is not None), json_size(old),
                    where)

    def remove(self, old: Any) -> None:
        """``old`` is taken out (it can only shrink the document)."""
        self.bound -= json_size(old) if self.limit is not None else 0


def member(key: str | None) -> int:
    """The bytes a new member (or, without a key, a list item) takes besides its value."""
    return len(key) + _MEMBER if key is not None else 1
