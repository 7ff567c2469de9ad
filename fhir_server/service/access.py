"""Who is asking and what they may see: the request context every layer carries.

An :class:`AccessScope` is in FHIR terms (resource types, search criteria, a
compartment), so that it can be enforced where the data is: the storage applies it to
every resource row a request can reach (reads, the root of a search, every chain and
``_has`` hop, includes, history, conditional-write look-ups), inside the SQL, so paging
and totals stay right and nothing outside it can be seen, counted or probed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.search.request import AnyClause, Compartment


@dataclass(frozen=True, slots=True)
class ReadRule:
    """Resources of ``resource_type`` (of every type when None) matching all ``criteria``
    (e.g. SMART v2 ``patient/Observation.rs?category=laboratory``)."""

    resource_type: str | None = None
    criteria: tuple[AnyClause, ...] = ()


@dataclass(frozen=True, slots=True)
class AccessScope:
    """What a caller may see: resources that some rule admits and, with a compartment,
    that are in it when their type can be (other types are as the rules say)."""

    rules: tuple[ReadRule, ...] = (ReadRule(),)
    compartment: Compartment | None = None

    def may_read_type(self, resource_type: str) -> bool:
        """Whether some rule can admit resources of ``resource_type`` at all."""
        return any(r.resource_type in (None, resource_type) for r in self.rules)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated client and user (filled in by authorization)."""

    client_id: str
    user: str | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One request's identity: its id, who is asking, and the scope to apply (None:
    everything is visible)."""

    request_id: str = "-"
    caller: Caller | None = None
    scope: AccessScope | None = None


#: The context of work no client asked for (background jobs, the importer).
SYSTEM = RequestContext("system")
