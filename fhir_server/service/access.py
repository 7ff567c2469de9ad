"""Who is asking and what they may see or change: the request context every layer carries.

An :class:`AccessScope` is in FHIR terms (resource types, the SMART permissions
``c r u d s``, search criteria, a compartment), so that it can be enforced where the
data is: the storage applies it to every resource row a request can reach (reads, the
root of a search, every chain and ``_has`` hop, includes, history, conditional-write
look-ups) inside the SQL, so paging and totals stay right and nothing outside it can be
seen, counted or probed; and it checks every write's old and new content against it in
the write's transaction. The router checks an interaction's permission before it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_server.search.request import AnyClause, Compartment

#: SMART v2 permissions: create, read, update, delete, search.
ALL_PERMISSIONS = frozenset("cruds")
#: What reading (read, vread, includes, history entries, chain hops) is allowed by.
READ_PERMISSIONS = frozenset("rs")
#: Types whose resources configure the server for every caller (a SearchParameter is
#: evaluated on every write of its base types): changing one needs the admin scope
#: (``api.router`` enforces it; ``$validate`` reports it).
OPERATOR_TYPES = frozenset({"SearchParameter"})
#: Types a wildcard (``*``) never reaches: the audit trail needs a scope naming it.
NOT_IN_WILDCARDS = frozenset({"AuditEvent"})


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Resources of ``resource_type`` (every type but ``excluded`` when None) matching all
    ``criteria`` (SMART v2 ``patient/Observation.rs?category=laboratory``), with the
    given ``permissions``; with ``in_compartment`` only those in the scope's
    compartment (``patient/`` scopes; types that cannot be in it are as the rule says)."""

    resource_type: str | None = None
    criteria: tuple[AnyClause, ...] = ()
    permissions: frozenset[str] = ALL_PERMISSIONS
    in_compartment: bool = True
    excluded: frozenset[str] = frozenset()

    def covers(self, resource_type: str) -> bool:
        """Whether the rule can admit resources of ``resource_type`` at all."""
        if self.resource_type is None:
            return resource_type not in self.excluded
        return self.resource_type == resource_type


@dataclass(frozen=True, slots=True)
class AccessScope:
    """What a caller may see and do: resources some rule admits (rules whose
    ``in_compartment`` is set admit only those in ``compartment``, when there is one).
    ``admin`` allows the operations on the server itself ($reindex, job status)."""

    rules: tuple[AccessRule, ...] = (AccessRule(),)
    compartment: Compartment | None = None
    admin: bool = False
    #: the same scope restricted to one permission, made on first use
    _views: dict[frozenset[str], AccessScope] = field(default_factory=dict, init=False,
                                                      compare=False, repr=False)

    def permits(self, permission: str, resource_type: str | None = None) -> bool:
        """Whether some rule grants ``permission`` on ``resource_type`` (on some type
        when None: a system-level search or history, narrowed by the storage)."""
        return any(permission in r.permissions
                   and (resource_type is None or r.covers(resource_type))
                   for r in self.rules)

    def may_read_type(self, resource_type: str) -> bool:
        """Whether some rule can admit resources of ``resource_type`` to a reader."""
        return any(r.permissions & READ_PERMISSIONS and r.covers(resource_type)
                   for r in self.rules)

    def restricts(self, resource_type: str, permissions: frozenset[str] = READ_PERMISSIONS
                  ) -> bool:
        """False when every resource of ``resource_type`` is admitted for
        ``permissions`` (a rule without criteria or compartment covers it), so the
        storage needs no condition: the hot path of a ``system/*.read`` token's read."""
        return not any(r.permissions & permissions and r.covers(resource_type)
                       and not r.criteria
                       and (not r.in_compartment or self.compartment is None)
                       for r in self.rules)

    def view(self, permissions: frozenset[str]) -> AccessScope:
        """This scope with only the rules granting one of ``permissions``."""
        known = self._views.get(permissions)
        if known is None:
            known = AccessScope(tuple(r for r in self.rules if r.permissions & permissions),
                                self.compartment, self.admin)
            if len(self._views) < 8:
                self._views[permissions] = known
        return known


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated client and user, from a verified access token."""

    client_id: str
    #: the token's subject (a user of the authorization server, or the client)
    user: str | None = None
    #: ``fhirUser``: the user's own resource, e.g. ``Practitioner/123``
    fhir_user: str | None = None
    #: the launch context's patient and encounter ids
    patient: str | None = None
    encounter: str | None = None
    #: the token's issuer
    issuer: str | None = None
    #: the granted scopes, as the token says them
    scopes: tuple[str, ...] = ()
    #: the caller's network address (audit, rate limits before authentication)
    address: str | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One request's identity: its id, who is asking, and the scope to apply (None:
    everything is visible and allowed: authorization is off, or work of the system)."""

    request_id: str = "-"
    caller: Caller | None = None
    scope: AccessScope | None = None


#: The context of work no client asked for (background jobs, the importer).
SYSTEM = RequestContext("system")
