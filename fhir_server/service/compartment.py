"""Compartments (http://hl7.org/fhir/R4/compartmentdefinition.html): which parameters
link a resource to, e.g., a Patient, from the shipped CompartmentDefinition files."""

from __future__ import annotations

from pathlib import Path

import orjson

from fhir_server.errors import BadRequest, NotFound
from fhir_server.search.request import Compartment
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


def compartment(ctx: ServiceContext, owner_type: str, owner_id: str) -> Compartment:
    """The compartment of ``owner_type/owner_id``; NotFound when there is no such
    compartment type or the id cannot exist."""
    ctx.check_type(owner_type)
    definition = ctx.compartments.get(owner_type)
    if definition is None:
        raise NotFound(f"there is no {owner_type} compartment")
    if not valid_id(owner_id):
        raise NotFound(f"{owner_type}/{owner_id} is not known")
    registry = ctx.search.registry
    params = tuple(p for rtype, codes in sorted(definition.items()) for code in codes
                   if (p := registry.get(rtype, code)) is not None)
    return Compartment(owner_type, owner_id, params)


def member_types(ctx: ServiceContext, owner_type: str) -> list[str]:
    """The resource types that can be in ``owner_type``'s compartment."""
    return sorted(t for t in ctx.compartments.get(owner_type, {}) if t in ctx.resource_types)


def check_member(compartment: Compartment, resource_type: str) -> None:
    """BadRequest unless ``resource_type`` can be in the compartment."""
    if resource_type not in compartment.member_types():
        raise BadRequest(f"{resource_type} is not in the {compartment.owner_type} compartment")
