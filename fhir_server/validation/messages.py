"""Turn jsonschema-rs errors into OperationOutcome issues with FHIRPath-like locations."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from jsonschema_rs import ValidationError

from fhir_server.errors import Issue
from fhir_server.validation.dates import PATTERNS as DATE_PATTERNS
from fhir_server.validation.dates import calendar_valid
from fhir_server.validation.schema import BINDING_KEYWORD, ELE1, MIME_TYPE, NULLABLE

# FHIR issue-type codes used for each kind of problem.
STRUCTURE = "structure"
REQUIRED = "required"
VALUE = "value"
CODE_INVALID = "code-invalid"
INVALID = "invalid"

_MAX_CODES_SHOWN = 8
_MAX_VALUE_SHOWN = 60

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean",
               int: "number", float: "number", type(None): "null"}


def expression(root: str, path: Sequence[str | int]) -> str:
    """``Patient`` + ``['name', 0, 'given', 1]`` -> ``Patient.name[0].given[1]``."""
    parts = [root]
    for step in path:
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(parts)


def _show(value: Any) -> str:
    """A short rendering of an offending value for a diagnostic."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_VALUE_SHOWN else text[:_MAX_VALUE_SHOWN] + "..."


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _primitive_name(schema_path: Sequence[str | int]) -> str | None:
    """The FHIR primitive whose definition produced an error, from the keyword location."""
    if len(schema_path) >= 2 and schema_path[0] == "definitions":
        return str(schema_path[1]).removesuffix(NULLABLE)
    return None


class Translator:
    """Builds issues for one resource; ``root`` is its resource type."""

    def __init__(self, root: str, labels: dict[tuple[str, ...], str] | None = None,
                 resource: dict[str, Any] | None = None) -> None:
        self.root = root
        self._labels = labels or {}
        self._resource = resource
        self.issues: list[Issue] = []
        self._seen: set[tuple[str, tuple[str, ...]]] = set()

    def add(self, code: str, where: Sequence[str | int], message: str,
            extra: Iterable[Sequence[str | int]] = ()) -> None:
        """Record one issue at ``where`` (plus optional further locations), once."""
        exprs = (expression(self.root, where), *(expression(self.root, e) for e in extra))
        key = (message, exprs)
        if key in self._seen:
            return
        self._seen.add(key)
        self.issues.append(Issue(code, f"{exprs[0]}: {message}", expression=exprs))

    def translate(self, errors: Iterable[ValidationError]) -> list[Issue]:
        """Translate every error; returns the accumulated issues."""
        for error in errors:
            self._one(error)
        return self.issues

    def _one(self, e: ValidationError) -> None:
        """Dispatch on the failing JSON Schema keyword."""
        kind = e.kind.name
        path = list(e.instance_path)
        if e.instance is None and self._null_with_extension(path):
            return
        handler = _HANDLERS.get(kind)
        if kind == BINDING_KEYWORD:
            self.add(CODE_INVALID, path, str(getattr(e.kind, "message", e.message)))
        elif handler is not None:
            handler(self, e, path)
        else:
            self.add(INVALID, path, e.message)

    def _null_with_extension(self, path: list[str | int]) -> bool:
        """Whether a null at ``path`` is a legal gap: ``x[i]`` null with ``_x[i]`` set."""
        if len(path) < 2 or not isinstance(path[-1], int) or not isinstance(path[-2], str):
            return False
        node: Any = self._resource
        for step in path[:-2]:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                return False
        if not isinstance(node, dict):
            return False
        siblings = node.get("_" + path[-2])
        index = path[-1]
        return isinstance(siblings, list) and index < len(siblings) \
            and isinstance(siblings[index], dict)

    def _type(self, e: ValidationError, path: list[str | int]) -> None:
        expected = [t for t in getattr(e.kind, "types", []) if t != "null"]
        found = _json_type(e.instance)
        if e.instance is None and path and isinstance(path[-1], int):
            name = path[-2] if len(path) > 1 else ""
            self.add(STRUCTURE, path, f"null is only allowed where '_{name}' has an entry")
            return
        code = VALUE if expected == ["integer"] and found == "number" else STRUCTURE
        wanted = " or ".join(expected) or "a different type"
        self.add(code, path, f"expected {wanted}, found {found} {_show(e.instance)}")

    def _unknown_elements(self, e: ValidationError, path: list[str | int]) -> None:
        for name in getattr(e.kind, "unexpected", []):
            self.add(STRUCTURE, [*path, name], f"unknown element '{name}'")

    def _required(self, e: ValidationError, path: list[str | int]) -> None:
        name = str(getattr(e.kind, "property", ""))
        if name == "resourceType":
            self.add(REQUIRED, [*path, name], "missing resourceType")
        else:
            self.add(REQUIRED, [*path, name], f"missing mandatory element '{name}'")

    def _any_of(self, e: ValidationError, path: list[str | int]) -> None:
        branches: list[list[ValidationError]] = getattr(e.kind, "context", [])
        required = [b[0] for b in branches if b and b[0].kind.name == "required"]
        if required:
            # One mandatory element that may appear as ``x``, ``_x`` or a choice variant.
            names = tuple(str(getattr(r.kind, "property", "")) for r in required)
            label = self._labels.get(names, names[0].lstrip("_"))
            self.add(REQUIRED, [*path, label.removesuffix("[x]")],
                     f"missing mandatory element '{label}'")
        else:
            self.add(INVALID, path, e.message)

    def _not(self, e: ValidationError, path: list[str | int]) -> None:
        negated = getattr(e.kind, "schema", None)
        if negated == ELE1:
            self.add(STRUCTURE, path,
                     "ele-1: element has only an id: it needs a value or children")
            return
        if "dependencies" in e.schema_path and isinstance(e.instance, dict):
            # Two variants of one (small) choice element: the schema lists the others.
            name = str(e.schema_path[e.schema_path.index("dependencies") + 1])
            others = [str(b["required"][0]) for b in negated.get("anyOf", ())] \
                if isinstance(negated, dict) else []
            self._choice_clash(path, name, [o for o in others if o in e.instance])
            return
        self.add(INVALID, path, e.message)

    def _property_names(self, e: ValidationError, path: list[str | int]) -> None:
        inner = getattr(e.kind, "error", None)
        if "dependencies" in e.schema_path and inner is not None:
            # Two variants of one choice element (``valueString`` and ``valueBoolean``).
            name = str(e.schema_path[e.schema_path.index("dependencies") + 1])
            self._choice_clash(path, name, [str(inner.instance)])
        else:
            self.add(INVALID, path, e.message)

    def _choice_clash(self, path: list[str | int], name: str, others: list[str]) -> None:
        """Report that variant ``name`` of a choice element appears with ``others``."""
        clash = sorted({name, *(o.lstrip("_") for o in others)})
        self.add(STRUCTURE, [*path, clash[0]],
                 f"only one of {' and '.join(clash)} may be present",
                 extra=[[*path, c] for c in clash[1:]])

    def _enum(self, e: ValidationError, path: list[str | int]) -> None:
        if path and path[-1] == "resourceType":
            self.add(STRUCTURE, path, f"unknown resource type {_show(e.instance)}")
            return
        if not isinstance(e.instance, str):
            self.add(STRUCTURE, path, f"expected a code string, found {_json_type(e.instance)}")
            return
        options = [o for o in getattr(e.kind, "options", []) if o is not None]
        shown = ", ".join(str(o) for o in options[:_MAX_CODES_SHOWN])
        more = ", ..." if len(options) > _MAX_CODES_SHOWN else ""
        self.add(CODE_INVALID, path,
                 f"{_show(e.instance)} is not a valid code (expected one of {shown}{more})")

    def _pattern(self, e: ValidationError, path: list[str | int]) -> None:
        prim = _primitive_name(e.schema_path) or "value"
        value = e.instance
        if value == "":
            return  # minLength reports the empty string once
        if getattr(e.kind, "pattern", None) == MIME_TYPE:
            self.add(VALUE, path, f"{_show(value)} is not a MIME type (BCP 13: "
                     "type/subtype, then any ;parameters)")
        elif prim in DATE_PATTERNS and isinstance(value, str) and not calendar_valid(value):
            self.add(VALUE, path, f"{_show(value)} is not a valid calendar date")
        elif prim in ("string", "markdown"):
            self.add(VALUE, path, f"{_show(value)} holds a control character (below U+0020 "
                     f"a {prim} may hold only tab, CR and LF)")
        else:
            self.add(VALUE, path, f"{_show(value)} is not a valid {prim}")

    def _empty_string(self, e: ValidationError, path: list[str | int]) -> None:
        self.add(VALUE, path, "empty string is not allowed")

    def _empty_array(self, e: ValidationError, path: list[str | int]) -> None:
        self.add(STRUCTURE, path, "empty array is not allowed")

    def _empty_object(self, e: ValidationError, path: list[str | int]) -> None:
        self.add(STRUCTURE, path,
                 "ele-1: empty object is not allowed (an element needs a value or children)")

    def _out_of_range(self, e: ValidationError, path: list[str | int]) -> None:
        prim = _primitive_name(e.schema_path) or "number"
        self.add(VALUE, path, f"{_show(e.instance)} is out of range for {prim}")

    def _not_allowed(self, e: ValidationError, path: list[str | int]) -> None:
        if path and path[-1] == "contained":
            self.add(STRUCTURE, path, "dom-2: a contained resource cannot contain resources")
        else:
            self.add(STRUCTURE, path, "element is not allowed here")

    def _const(self, e: ValidationError, path: list[str | int]) -> None:
        self.add(VALUE, path, f"{_show(e.instance)} is not the expected value")


_Handler = Callable[[Translator, ValidationError, list[str | int]], None]

# The failing JSON Schema keyword -> how to word it.
_HANDLERS: dict[str, _Handler] = {
    "type": Translator._type,
    "additionalProperties": Translator._unknown_elements,
    "required": Translator._required,
    "anyOf": Translator._any_of,
    "not": Translator._not,
    "propertyNames": Translator._property_names,
    "enum": Translator._enum,
    "pattern": Translator._pattern,
    "minLength": Translator._empty_string,
    "minItems": Translator._empty_array,
    "minProperties": Translator._empty_object,
    "minimum": Translator._out_of_range,
    "maximum": Translator._out_of_range,
    "falseSchema": Translator._not_allowed,
    "const": Translator._const,
}
