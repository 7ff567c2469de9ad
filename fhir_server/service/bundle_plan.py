"""References in the resources of a batch or transaction Bundle, and its entry order.

Bundles are parsed with decimals kept exact (``parse_json_exact``) because entry
resources are re-serialized after their references are rewritten.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Transaction processing order (http.html#trules): DELETE, POST, PUT/PATCH, GET/HEAD.
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


def reference_holders(value: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """Every object holding a ``reference`` string anywhere in ``value`` (extensions and
    contained resources included), with that string; the caller may replace it.

    A Bundle's entries are not walked: their references resolve against that Bundle's
    own fullUrls (a stored document), not against the Bundle being processed.
    """
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            bundle = node.get("resourceType") == "Bundle"
            for key, child in node.items():
                if key == "reference" and isinstance(child, str):
                    yield node, child
                elif isinstance(child, dict | list) and not (bundle and key == "entry"):
                    stack.append(child)
        elif isinstance(node, list):
            stack.extend(c for c in node if isinstance(c, dict | list))


def is_conditional(reference: str) -> bool:
    """``Type?query``: a conditional reference, resolved by search."""
    return "?" in reference and "/" not in reference.split("?", 1)[0]


def rewrite_references(value: Any, mapping: dict[str, str]) -> list[str]:
    """Replace references to bundle fullUrls in place; return the conditional ones found."""
    conditional: list[str] = []
    for node, reference in reference_holders(value):
        target = mapping.get(reference)
        if target is not None:
            node["reference"] = target
        elif is_conditional(reference):
            conditional.append(reference)
    return conditional


def replace_references(value: Any, resolved: dict[str, str]) -> None:
    """Replace resolved conditional references (``Type?query`` -> ``Type/id``) in place."""
    for node, reference in reference_holders(value):
        if reference in resolved:
            node["reference"] = resolved[reference]
