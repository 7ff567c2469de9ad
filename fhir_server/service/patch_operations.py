"""FHIRPath Patch operations (add, insert, delete, replace, move) on one resource.

:class:`Patcher` applies checked :class:`Operation` s, in order, to a resource it may
change in place (the caller hands it a copy). Paths are resolved by
:mod:`fhir_server.service.patch_fhirpath`; values come from the ``value`` part, either a
``value[x]`` (its ``_value[x]`` sibling carries a primitive's extensions), a
``resource``, or nested ``part`` s that build a complex value. With the definitions, a
choice name (``value``) takes its type suffix, repeating elements become arrays and
value types are checked; without them, only the JSON shape is checked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fhir_server.definitions import Definitions, ElementInfo
from fhir_server.service.patch_fhirpath import (
    PRIMITIVE_TYPES,
    Evaluator,
    Node,
    bad_request,
    child_struct,
    element_info,
    find_shadow,
    type_name,
    unprocessable,
)
from fhir_server.service.patch_fhirpath_syntax import Member, PathExpr, parse_path
from fhir_server.service.patch_size import SizeBudget

# Elements that repeat wherever they occur, so known to be arrays even without definitions.
_ALWAYS_REPEATING = frozenset({"extension", "modifierExtension", "contained"})
# Quantity and its profiles share one JSON shape, so any may stand for another.
_QUANTITIES = frozenset({"Quantity", "Age", "Count", "Distance", "Duration",
                         "SimpleQuantity", "MoneyQuantity"})


@dataclass(frozen=True)
class Operation:
    """One ``operation`` parameter, with its parts checked for shape."""

    number: int
    type: str
    path: str
    name: str | None = None
    value: dict[str, Any] | None = None  # the `value` part; built once the target is known
    index: int | None = None
    source: int | None = None
    destination: int | None = None


@dataclass(frozen=True)
class _Value:
    """A value to put into the resource: its JSON, its ``_x`` sibling and its FHIR type."""

    data: Any
    shadow: Any = None
    type: str | None = None  # None for a value built from parts
    is_resource: bool = False


def value_keys(part: dict[str, Any]) -> list[str]:
    """The ``value[x]`` keys of a Parameters part."""
    return [k for k in part if k.startswith("value") and k[5:6].isupper()]


def _value_type(part: dict[str, Any]) -> str | None:
    keys = value_keys(part)
    if keys:
        return type_name(keys[0][5:])
    resource = part.get("resource")
    return str(resource["resourceType"]) if isinstance(resource, dict) else None


class Patcher:
    """Applies FHIRPath Patch operations to one (already copied) resource."""

    def __init__(self, resource: dict[str, Any], definitions: Definitions | None,
                 budget: SizeBudget | None = None) -> None:
        self.resource = resource
        self.definitions = definitions
        self.evaluator = Evaluator(definitions)
        #: the bound of the resource's size, raised by each value before it goes in
        self.budget = budget or SizeBudget(resource, None)

    def json_name(self, struct: str | None, name: str, value_type: str | None,
                  where: str) -> str:
        """The JSON key for element ``name``: a choice (``value[x]``) takes the type suffix."""
        stem = name.removesuffix("[x]")
        known = self.definitions.children(struct) if self.definitions and struct else {}
        if not name.endswith("[x]") and stem + "[x]" not in known:
            return name
        if value_type is None:
            raise unprocessable(f"{name} is a choice element: give its value as value[x] so "
                                "that its type is known", where)
        return stem + value_type[:1].upper() + value_type[1:]

    def check_type(self, info: ElementInfo | None, value: _Value, where: str) -> None:
        """Reject a value whose type cannot stand where ``info`` says (when known)."""
        types = info.types if info is not None else ()
        if not types:
            return
        if value.is_resource:
            ok = "Resource" in types or value.type in types
        elif value.type is None:  # built from parts: a complex value
            ok = not all(t in PRIMITIVE_TYPES for t in types)
        else:
            family = PRIMITIVE_TYPES if value.type in PRIMITIVE_TYPES else _QUANTITIES
            ok = value.type in types or (value.type in family
                                         and any(t in family for t in types))
        if not ok:
            given = value.type or "complex value"
            raise unprocessable(f"{where} has type {' | '.join(types)}; a {given} cannot be "
                                "put there", where)

    def build(self, part: dict[str, Any], struct: str | None, where: str) -> _Value:
        """The value of a checked ``value`` part; ``part``s build a complex value."""
        keys = value_keys(part)
        if keys:
            return _Value(copy.deepcopy(part[keys[0]]), copy.deepcopy(part.get("_" + keys[0])),
                          type_name(keys[0][5:]))
        if "resource" in part:
            resource = copy.deepcopy(part["resource"])
            return _Value(resource, None, resource["resourceType"], is_resource=True)
        built: dict[str, Any] = {}
        grouped: dict[str, list[_Value]] = {}
        for sub in part["part"]:
            key = self.json_name(struct, sub["name"], _value_type(sub), where)
            sub_where = f"{where}.{key}"
            value = self.build(sub, child_struct(self.definitions, struct, key, None), sub_where)
            self.check_type(element_info(self.definitions, struct, key), value, sub_where)
            grouped.setdefault(key, []).append(value)
        for key, values in grouped.items():
            info = element_info(self.definitions, struct, key)
            if info is not None and not info.is_array and len(values) > 1:
                raise unprocessable(f"{where}.{key} does not repeat but has {len(values)} "
                                    "values", where)
            if info is None and self.definitions and struct and \
                    self.definitions.properties(struct):
                raise unprocessable(f"{key} is not an element of {struct}", where)
            if _repeats(info, key) or len(values) > 1:
                for value in values:
                    _insert(built, key, len(built.get(key, [])), value)
            else:
                _set(built, key, values[0])
        return _Value(built)

    def _rooted(self, path: str) -> tuple[Node, PathExpr]:
        """The resource node and the path without its leading resource type."""
        expr = parse_path(path)
        kind = self.resource.get("resourceType")
        root = Node(self.resource, struct=kind)
        first = expr.steps[0] if expr.steps else None
        if isinstance(first, Member) and first.name == kind:
            return root, PathExpr(expr.steps[1:])
        if isinstance(first, Member) and first.name[:1].isupper():
            raise unprocessable(f"Path {path!r} does not apply to a {kind} resource", path)
        return root, expr

    def resolve(self, path: str) -> list[Node]:
        """Every element that ``path`` selects in the resource."""
        root, expr = self._rooted(path)
        return self.evaluator.steps(expr.steps, [root])

    def resolve_list(self, path: str) -> tuple[Node, str]:
        """For insert / move: the one element owning the list ``path`` names, and its key."""
        root, expr = self._rooted(path)
        last = expr.steps[-1] if expr.steps else None
        if not isinstance(last, Member):
            raise bad_request(f"Path {path!r} must end with the name of a repeating element",
                              path)
        owners = self.evaluator.steps(expr.steps[:-1], [root])
        if len(owners) != 1 or not isinstance(owners[0].value, dict):
            found = "no element" if not owners else f"{len(owners)} elements"
            raise unprocessable(f"The list at {path!r} must belong to exactly one element; "
                                f"found {found}", path)
        return owners[0], last.name

    def single(self, op: Operation) -> Node:
        """The one element the operation's path must select."""
        nodes = self.resolve(op.path)
        if len(nodes) != 1:
            found = "No content" if not nodes else f"{len(nodes)} elements"
            raise unprocessable(f"{found} found at {op.path} when trying to {op.type} "
                                f"(operation #{op.number}); it must select exactly one "
                                "element", op.path)
        return nodes[0]

    def apply(self, op: Operation) -> None:
        """Apply one operation in place."""
        getattr(self, "op_" + op.type)(op)

    def op_delete(self, op: Operation) -> None:
        """Delete the element at path; nothing to delete is not an error."""
        nodes = self.resolve(op.path)
        if len(nodes) > 1:
            raise unprocessable(f"{op.path} selects {len(nodes)} elements; delete removes "
                                "only a single element", op.path)
        if nodes:
            self.budget.remove(nodes[0].value)
            remove_node(nodes[0])

    def op_replace(self, op: Operation) -> None:
        """Replace the element at path (a choice may change its type)."""
        node = self.single(op)
        if node.parent is None or node.prop is None or op.value is None:
            raise unprocessable("A patch cannot replace the whole resource", op.path)
        owner = node.owner.struct if node.owner is not None else None
        value = self.build(op.value, node.struct, op.path)
        info = element_info(self.definitions, owner, node.prop)
        stem = node.stem or (info.name[:-3] if info is not None and info.is_choice else None)
        key = stem + value.type[:1].upper() + value.type[1:] if stem and value.type \
            and not value.is_resource else node.prop
        info = element_info(self.definitions, owner, key) or info
        self.check_type(info, value, op.path)
        self.budget.replace(f"operation #{op.number} (replace {op.path})", node.value,
                            value.data, value.shadow)
        if key == node.prop and node.value is not None and \
                isinstance(node.value, dict) != isinstance(value.data, dict):
            kinds = ("a complex value", "a primitive value")
            old, new = (kinds[not isinstance(v, dict)] for v in (node.value, value.data))
            raise unprocessable(f"{op.path} holds {old} and cannot be replaced by {new}",
                                op.path)
        if key != node.prop:  # another type of the choice: swap the key in place
            old_items = list(node.parent.items())
            node.parent.clear()
            for k, v in old_items:
                if k == node.prop:
                    _set(node.parent, key, value)
                elif k != "_" + node.prop:
                    node.parent[k] = v
        elif node.index is None:
            node.parent.pop("_" + key, None)
            _set(node.parent, key, value)
        else:
            node.parent[key][node.index] = value.data
            _set_shadow_item(node.parent, key, node.index, value.shadow)

    def op_add(self, op: Operation) -> None:
        """Add ``name`` to the element at path: append to a list, or set if absent."""
        target = self.single(op)
        assert op.name is not None and op.value is not None  # required by _read_operation
        if not isinstance(target.value, dict):
            shadow = _make_shadow(target) if op.name in ("id", "extension") else None
            if shadow is None:
                raise unprocessable(f"{op.path} is a primitive value: cannot add {op.name} "
                                    "to it", op.path)
            target = shadow
        key = self.json_name(target.struct, op.name, _value_type(op.value), op.path)
        where = f"{op.path}.{key}"
        info = element_info(self.definitions, target.struct, key)
        if info is None and self.definitions and target.struct and \
                self.definitions.properties(target.struct):
            raise unprocessable(f"{key} is not an element of {target.struct}", where)
        value = self.build(op.value, child_struct(self.definitions, target.struct, key,
                                                  None), where)
        self.check_type(info, value, where)
        self.budget.add(f"operation #{op.number} (add {where})", key, value.data,
                        value.shadow)
        existing = target.value.get(key)
        stem = op.name.removesuffix("[x]")
        if key != stem and any(self.evaluator.is_choice_key(k, stem, target.struct)
                               for k in target.value):
            existing = True  # another type of the same choice is there
        if isinstance(existing, list) or (existing is None and _repeats(info, key)):
            _check_shape(existing or [], value, where)
            _insert(target.value, key, len(existing or []), value)
        elif existing is not None:
            raise unprocessable(f"{where} already has a value: use replace", where)
        else:
            _set(target.value, key, value)

    def _list(self, op: Operation) -> tuple[Node, str, list[Any]]:
        owner, key = self.resolve_list(op.path)
        items = owner.value.get(key)
        info = element_info(self.definitions, owner.struct, key)
        if (items is not None and not isinstance(items, list)) or (
                items is None and info is not None and not info.is_array):
            raise unprocessable(f"{op.path} is not a repeating element", op.path)
        return owner, key, items or []

    def op_insert(self, op: Operation) -> None:
        """Insert the value into the list at path, at ``index``."""
        owner, key, items = self._list(op)
        assert op.index is not None and op.value is not None  # required by _read_operation
        if op.index > len(items):
            raise unprocessable(f"Index {op.index} is outside {op.path}, which has "
                                f"{len(items)} item(s)", op.path)
        value = self.build(op.value, child_struct(self.definitions, owner.struct, key, None),
                           op.path)
        self.check_type(element_info(self.definitions, owner.struct, key), value, op.path)
        _check_shape(items, value, op.path)
        self.budget.add(f"operation #{op.number} (insert {op.path})", None, value.data,
                        value.shadow)
        _insert(owner.value, key, op.index, value)

    def op_move(self, op: Operation) -> None:
        """Move the list item at ``source`` to ``destination``."""
        owner, key, items = self._list(op)
        assert op.source is not None and op.destination is not None
        for name, position in (("source", op.source), ("destination", op.destination)):
            if position >= len(items):
                raise unprocessable(f"The {name} index {position} is outside {op.path}, "
                                    f"which has {len(items)} item(s)", op.path)
        items.insert(op.destination, items.pop(op.source))
        shadows = owner.value.get("_" + key)
        if isinstance(shadows, list):  # keep the `_x` array parallel
            shadows.extend([None] * (len(items) - len(shadows)))
            shadows.insert(op.destination, shadows.pop(op.source))


def _repeats(info: ElementInfo | None, key: str) -> bool:
    """Whether element ``key`` is an array, as far as can be told."""
    return info.is_array if info is not None else key in _ALWAYS_REPEATING


def _check_shape(items: list[Any], value: _Value, where: str) -> None:
    """Without types, at least keep a list all-objects or all-primitives."""
    if items and isinstance(items[0], dict) != isinstance(value.data, dict):
        raise unprocessable(f"The value does not match the items of {where}", where)


def _set(container: dict[str, Any], key: str, value: _Value) -> None:
    container[key] = value.data
    if value.shadow is not None:
        container["_" + key] = value.shadow


def _set_shadow_item(container: dict[str, Any], key: str, index: int, shadow: Any) -> None:
    shadows = container.get("_" + key)
    if shadow is None and not isinstance(shadows, list):
        return
    if not isinstance(shadows, list):
        shadows = container["_" + key] = []
    shadows.extend([None] * (len(container[key]) - len(shadows)))
    shadows[index] = shadow
    if all(item is None for item in shadows):
        del container["_" + key]


def _make_shadow(node: Node) -> Node | None:
    """A primitive's ``_name`` sibling, made empty when absent (to add an extension)."""
    found = find_shadow(node)
    if found is not None or node.parent is None or node.prop is None \
            or node.prop.startswith("_"):
        return found
    if node.index is None:
        node.parent["_" + node.prop] = {}
    else:
        _set_shadow_item(node.parent, node.prop, node.index, {})
    return find_shadow(node)


def _insert(container: dict[str, Any], key: str, index: int, value: _Value) -> None:
    """Insert into the list ``container[key]`` (made if absent), keeping ``_key`` parallel."""
    items = container.setdefault(key, [])
    items.insert(index, value.data)
    shadows = container.get("_" + key)
    if isinstance(shadows, list):
        shadows.extend([None] * (len(items) - 1 - len(shadows)))
        shadows.insert(index, None)
    _set_shadow_item(container, key, index, value.shadow)


def _prune_list(parent: dict[str, Any], key: str | None) -> None:
    items = parent.get(key) if key else None
    if key and isinstance(items, list) and (
            not items or (key.startswith("_") and all(i is None for i in items))):
        del parent[key]


def remove_node(node: Node) -> None:
    """Remove ``node`` (with its ``_`` sibling); drop containers that become empty."""
    parent, prop = node.parent, node.prop
    if parent is None or prop is None:
        raise unprocessable("A patch cannot remove the whole resource")
    shadow_key = None if prop.startswith("_") else "_" + prop
    if node.index is None:
        parent.pop(prop, None)
        if shadow_key:
            parent.pop(shadow_key, None)
    elif prop.startswith("_"):
        parent[prop][node.index] = None  # keeps the array parallel to the primitives
    else:
        del parent[prop][node.index]
        shadows = parent.get(shadow_key or "")
        if isinstance(shadows, list) and node.index < len(shadows):
            del shadows[node.index]
    _prune_list(parent, prop)
    _prune_list(parent, shadow_key)
    # FHIR JSON has no empty objects: an element left empty goes too.
    if not parent and node.owner is not None and node.owner.parent is not None:
        remove_node(node.owner)
