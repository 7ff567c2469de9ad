"""What one search may cost, checked while its query is parsed (before any SQL).

A search's cost grows with its clauses (one index lookup, or a join per chain link,
each), its OR values and the depth of its chains and ``_has``; each is bounded by a
setting, and a search past one is a 400 ``too-costly`` naming it. Text PostgreSQL
cannot hold (NUL) is refused here too, for every way a search arrives (the query, a
form, ``If-None-Exist``, a token's scope criteria).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.errors import BadRequest
from fhir_server.settings import Settings


@dataclass(frozen=True)
class SearchLimits:
    """``SEARCH_MAX_PARAMETERS``, ``SEARCH_MAX_VALUES`` and ``SEARCH_MAX_CHAIN_DEPTH``."""

    max_parameters: int = Settings.search_max_parameters
    max_values: int = Settings.search_max_values
    max_chain_depth: int = Settings.search_max_chain_depth

    @classmethod
    def of(cls, settings: Settings) -> SearchLimits:
        """The limits a server's settings give."""
        return cls(settings.search_max_parameters, settings.search_max_values,
                   settings.search_max_chain_depth)


def too_costly(what: str, limit: int, setting: str) -> BadRequest:
    """The 400 ``too-costly`` for a search past one of its limits."""
    return BadRequest(f"this search has {what}; at most {limit} are allowed ({setting})",
                      code="too-costly")


def check_text(name: str, value: str) -> None:
    """BadRequest for a parameter name or value holding a NUL character."""
    if "\x00" in name or "\x00" in value:
        raise BadRequest(f"search parameter {name[:40]!r} holds a NUL character (%00)")


def links(name: str, limit: int) -> int:
    """The links of one parameter's chain: each ``_has:`` level and each ``.`` hop.

    Counted without building anything, stopping past ``limit``: a name of a thousand
    hops (a 9 kB URL) costs no more than one of ``limit``; BadRequest past it.
    """
    depth = 0
    rest = name
    while rest.startswith("_has:"):
        depth += 1
        if depth > limit:
            break
        pieces = rest.split(":", 3)
        if len(pieces) < 4:
            raise BadRequest(f"{name[:80]!r}: _has takes _has:Type:reference:parameter")
        rest = pieces[3]
    else:
        depth += rest.count(".")
    if depth > limit:
        raise too_costly(f"a chain of more than {limit} links in {name[:80]!r}", limit,
                         "SEARCH_MAX_CHAIN_DEPTH")
    return depth
