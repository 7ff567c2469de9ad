"""Runtime pieces of the fast path: plain-Python walks over parsed JSON.

An *op* maps the current collection (a list of JSON values) to the next one; it also
receives the resource being indexed (for ``resolve()`` of contained references). A
*fan* turns the final collection into :class:`~fhir_server.search.base.Node` objects:
each entry names the child key to read (``None``: the items themselves), the FHIR type
of the values found there and the Python types such values may have - anything else
is malformed data and is skipped rather than handed to the index modules.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from decimal import Decimal
from typing import Any, Protocol

from fhir_server.search.base import Node

#: (items, resource) -> items
Op = Callable[[list[Any], Any], list[Any]]
#: hashable description of an op: ("child", key), ("index", n), ("ref", type),
#: ("eq", key, literal, literal type name)
OpSpec = tuple[Any, ...]


class Runner(Protocol):
    """Evaluates one (part of an) expression: context node value, resource -> nodes.

    ``resource`` defaults to ``context`` (expressions on a resource itself).
    """

    def __call__(self, context: Any, resource: Any = None) -> list[Node]:
        """The nodes selected from ``context``."""
        ...


#: (child key or None, FHIR type or None for "the value's resourceType", allowed Python types)
Fan = tuple[str | None, str | None, tuple[type, ...]]

_BOOL = (bool,)
_INT = (int,)
_NUMBER = (int, float, Decimal)
_STR = (str,)
_DICT: tuple[type, ...] = (dict,)
_INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})


def allowed_python_types(fhir_type: str | None, primitives: Collection[str]) -> tuple[type, ...]:
    """The Python types a well-formed JSON value of ``fhir_type`` can have."""
    if fhir_type is None or fhir_type not in primitives:
        return _DICT
    if fhir_type == "boolean":
        return _BOOL
    if fhir_type in _INTEGER_TYPES:
        return _INT
    if fhir_type == "decimal":
        return _NUMBER
    return _STR


def _only_extensions(value: dict[str, Any]) -> bool:
    """An element with nothing but extensions (data-absent-reason) is no value."""
    return len(value) == 1 and "extension" in value


def reference_type(ref: Any, resource: Any, resource_types: Collection[str]) -> str | None:
    """The resource type a Reference points to, as far as the reference itself tells.

    ``Patient/1``, ``Patient/1/_history/2`` and absolute ``http://x/fhir/Patient/1``
    give ``Patient``; ``#id`` is looked up in the resource's ``contained``; a reference
    without a parseable ``reference`` (``urn:uuid:``, logical, identifier only) falls
    back on ``Reference.type``.
    """
    if not isinstance(ref, dict):
        return None
    target = ref.get("reference")
    if isinstance(target, str):
        if target.startswith("#"):
            return _contained_type(target[1:], resource)
        segments = target.split("?", 1)[0].split("/")
        if len(segments) >= 4 and segments[-2] == "_history":
            segments = segments[:-2]
        if len(segments) >= 2 and segments[-1] and segments[-2] in resource_types:
            return segments[-2]
    declared = ref.get("type")
    return declared if isinstance(declared, str) and declared in resource_types else None


def _contained_type(local_id: str, resource: Any) -> str | None:
    """The type of the contained resource ``local_id`` (empty id: the container)."""
    if not isinstance(resource, dict):
        return None
    if not local_id:
        found = resource.get("resourceType")
        return found if isinstance(found, str) else None
    contained = resource.get("contained")
    if isinstance(contained, list):
        for item in contained:
            if isinstance(item, dict) and item.get("id") == local_id:
                found = item.get("resourceType")
                return found if isinstance(found, str) else None
    return None


def same_literal(value: Any, literal: Any) -> bool:
    """FHIRPath ``=`` of one JSON value and a literal (no bool/number mixing)."""
    if isinstance(literal, bool) or isinstance(value, bool):
        return type(value) is type(literal) and value == literal
    if isinstance(literal, str):
        return isinstance(value, str) and value == literal
    return isinstance(value, (int, float, Decimal)) and value == literal


def child_op(key: str) -> Op:
    """Select ``key`` of every object item, flattening arrays (null slots stay until a
    later dict check or the final type check drops them)."""
    def op(items: list[Any], resource: Any) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if isinstance(item, dict):
                value = item.get(key)
                if value is None:
                    continue
                if isinstance(value, list):
                    out.extend(value)
                else:
                    out.append(value)
        return out
    return op


def index_op(n: int) -> Op:
    """Keep item ``n`` of the collection (FHIRPath indexes the whole collection)."""
    def op(items: list[Any], resource: Any) -> list[Any]:
        return [item for item in items if item is not None][n:n + 1]
    return op


def where_eq_op(key: str, literal: Any) -> Op:
    """Keep the object items whose single ``key`` value equals ``literal``."""
    if isinstance(literal, str):
        # The common case (system = 'phone'): only a string equals a string; a
        # one-item array counts as its item.
        one = [literal]

        def op_str(items: list[Any], resource: Any) -> list[Any]:
            return [item for item in items if isinstance(item, dict)
                    and ((value := item.get(key)) == literal or value == one)]
        return op_str

    def matches(item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        value = item.get(key)
        if isinstance(value, list):
            # A collection equals a single literal only when it has exactly one item.
            if len(value) != 1:
                return False
            value = value[0]
        return same_literal(value, literal)

    def op(items: list[Any], resource: Any) -> list[Any]:
        return [item for item in items if matches(item)]
    return op


def where_ref_op(target: str, resource_types: Collection[str]) -> Op:
    """``where(resolve() is target)``: keep the References pointing to ``target``."""
    def op(items: list[Any], resource: Any) -> list[Any]:
        return [item for item in items
                if reference_type(item, resource, resource_types) == target]
    return op


def build_op(spec: OpSpec, resource_types: Collection[str]) -> Op:
    """The op described by ``spec`` (see :class:`~fhirpath_plan.Branch`)."""
    kind = spec[0]
    if kind == "child":
        return child_op(spec[1])
    if kind == "index":
        return index_op(spec[1])
    if kind == "ref":
        return where_ref_op(spec[1], resource_types)
    return where_eq_op(spec[1], spec[2])


#: The attribute of a runner that names the keys of the root object it reads first: it
#: finds nothing in a root that has none of them, so the indexer need not call it.
#: Runners without it (``exists()``, fhirpathpy's) may find something in any root.
_ROOTS = "roots"


def _rooted(run: Runner, roots: tuple[str, ...] | None) -> Runner:
    if roots is not None:
        setattr(run, _ROOTS, roots)
    return run


def roots_of(runner: Any) -> tuple[str, ...] | None:
    """The root keys a runner reads first (see ``_ROOTS``); None: unknown."""
    found: tuple[str, ...] | None = getattr(runner, _ROOTS, None)
    return found


def _fan_keys(fan: Sequence[Fan]) -> tuple[str, ...] | None:
    keys = tuple(key for key, _, _ in fan if key is not None)
    return keys if len(keys) == len(fan) else None


def _first_keys(prefix: Sequence[OpSpec], fan: Sequence[Fan]) -> tuple[str, ...] | None:
    """The root keys of one group: its first op's child, else its fan's children."""
    if not prefix:
        return _fan_keys(fan)
    return (prefix[0][1],) if prefix[0][0] == "child" else None


def _joined(parts: Sequence[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    if any(p is None for p in parts):
        return None
    return tuple(dict.fromkeys(k for p in parts for k in p or ()))


def _emit(items: Sequence[Any], fan: Sequence[Fan], out: list[Node]) -> None:
    """Append the nodes of ``fan`` over the final ``items`` to ``out``."""
    for key, fhir_type, allowed in fan:
        if key is None:
            values: Sequence[Any] = items
        else:
            values = []
            for item in items:
                if isinstance(item, dict):
                    value = item.get(key)
                    if isinstance(value, list):
                        values.extend(value)
                    elif value is not None:
                        values.append(value)
        for value in values:
            if type(value) not in allowed or (allowed is _DICT and _only_extensions(value)):
                continue
            if fhir_type is not None:
                out.append(Node(value, fhir_type))
            elif isinstance(kind := value.get("resourceType"), str):
                # An element of type Resource: the value says which resource it is.
                out.append(Node(value, kind))


def _simple_runner(key: str, fhir_type: str, allowed: tuple[type, ...],
                   from_resource: bool) -> Runner:
    """The commonest shape (``Patient.gender``): one dictionary read."""
    def run(context: Any, resource: Any = None) -> list[Node]:
        node = resource if from_resource and resource is not None else context
        if not isinstance(node, dict):
            return []
        value = node.get(key)
        if value is None:
            return []
        if allowed is _DICT:
            # inlined _only_extensions: this is the hottest loop of all
            if isinstance(value, list):
                return [Node(v, fhir_type) for v in value
                        if type(v) is dict and (len(v) != 1 or "extension" not in v)]
            return [Node(value, fhir_type)] \
                if type(value) is dict and not _only_extensions(value) else []
        if isinstance(value, list):
            return [Node(v, fhir_type) for v in value if type(v) in allowed]
        return [Node(value, fhir_type)] if type(value) in allowed else []
    return _rooted(run, (key,))


def _chain_runner(keys: tuple[str, ...], fan: tuple[Fan, ...], from_resource: bool) -> Runner:
    """Dotted paths (``Patient.name.given``): the child walks inlined in one loop.

    ``null`` array slots ride along until the end: they are no dict to walk into and
    fail the final type check.
    """
    def run(context: Any, resource: Any = None) -> list[Node]:
        items = [resource if from_resource and resource is not None else context]
        for key in keys:
            found: list[Any] = []
            for item in items:
                if isinstance(item, dict):
                    value = item.get(key)
                    if isinstance(value, list):
                        found.extend(value)
                    elif value is not None:
                        found.append(value)
            if not found:
                return []
            items = found
        out: list[Node] = []
        _emit(items, fan, out)
        return out
    return _rooted(run, (keys[0],) if keys else _fan_keys(fan))


def make_runner(groups: Sequence[tuple[Sequence[OpSpec], Sequence[Fan]]],
                from_resource: bool, resource_types: Collection[str]) -> Runner:
    """A runner for one union part: each group is prefix ops, then a fan of children.

    Several groups come only from choice elements whose branches differ before the
    last step, which is rare; the shapes that dominate get specialised runners.
    """
    if len(groups) == 1 and all(spec[0] == "child" for spec in groups[0][0]):
        prefix, fans = groups[0]
        key, fhir_type, allowed = fans[0]
        if not prefix and len(fans) == 1 and key is not None and fhir_type is not None:
            return _simple_runner(key, fhir_type, allowed, from_resource)
        return _chain_runner(tuple(spec[1] for spec in prefix), tuple(fans), from_resource)
    frozen = tuple((tuple(build_op(s, resource_types) for s in prefix), tuple(fan))
                   for prefix, fan in groups)

    def run(context: Any, resource: Any = None) -> list[Node]:
        if resource is None:
            resource = context
        start = [resource if from_resource else context]
        out: list[Node] = []
        for ops, fan in frozen:
            items = start
            for op in ops:
                items = op(items, resource)
                if not items:
                    break
            else:
                _emit(items, fan, out)
        return out
    return _rooted(run, _joined([_first_keys(prefix, fan) for prefix, fan in groups]))


def exists_runner(inner: Runner, not_equal: tuple[Any, ...]) -> Runner:
    """``X.exists()`` or, with a literal, ``X.exists() and X != literal``: one boolean."""
    def run(context: Any, resource: Any = None) -> list[Node]:
        found = inner(context, resource)
        if not found:
            return [Node(False, "boolean")]
        if not not_equal:
            return [Node(True, "boolean")]
        equal = len(found) == 1 and same_literal(found[0].value, not_equal[0])
        return [Node(not equal, "boolean")]
    return run


def union_runner(runners: Sequence[Runner]) -> Runner:
    """``a | b``: the nodes of every part, without repeated values (FHIRPath union)."""
    parts = tuple(runners)

    def run(context: Any, resource: Any = None) -> list[Node]:
        found: list[Node] = []
        for part in parts:
            found += part(context, resource)
        if len(found) < 2:
            return found
        out: list[Node] = []
        seen: list[Any] = []
        for node in found:
            if not any(_equal(node.value, s) for s in seen):
                seen.append(node.value)
                out.append(node)
        return out
    return _rooted(run, _joined([roots_of(r) for r in parts]))


def _equal(a: Any, b: Any) -> bool:
    """Value equality that keeps booleans apart from numbers (``True`` is not ``1``)."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) \
        else bool(a == b)

