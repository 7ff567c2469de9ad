"""Compartments (http://hl7.org/fhir/R4/compartmentdefinition.html): which parameters
link a resource to, e.g., a Patient, from the shipped CompartmentDefinition files."""

from __future__ import annotations

from pathlib import Path

import orjson

from fhir_server.errors import BadRequest, NotFound
from fhir_server.search.base import Fragment
from fhir_server.search.compile import compartment_condition as _condition
from fhir_server.search.hashing import param_key
from fhir_server.service.context import ServiceContext, valid_id


def load_compartments(folder: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    """Compartment type -> resource type -> parameter codes, from ``compartmentdefinition*``."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for path in sorted(folder.glob("compartmentdefinition*.json")):
        data = orjson.loads(path.read_bytes())
        if data.get("resourceType") != "CompartmentDefinition":
            continue
        out[data["code"]] = {r["code"]: tuple(r.get("param", ()))
                             for r in data.get("resource", []) if r.get("param")}
    return out


def compartment_condition(ctx: ServiceContext, owner_type: str, owner_id: str,
                          resource_type: str) -> Fragment:
    """The search condition restricting ``resource_type`` to one compartment."""
    ctx.check_type(owner_type)
    definition = ctx.compartments.get(owner_type)
    if definition is None:
        raise NotFound(f"there is no {owner_type} compartment")
    if not valid_id(owner_id):
        raise NotFound(f"{owner_type}/{owner_id} is not known")
    codes = definition.get(resource_type)
    if not codes:
        raise BadRequest(f"{resource_type} is not in the {owner_type} compartment")
    return _condition([param_key(resource_type, c) for c in codes], owner_type, owner_id)
