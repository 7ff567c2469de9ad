"""Which patients an interaction is about, for BALP's Patient-specific patterns.

BALP wants the patient of a patient-identifiable activity as an entity (role Patient),
so that a patient's accounting of disclosures is one search (``AuditEvent?patient=``).
The patients are found cheaply, from what the request already holds: the token's
launch patient, a Patient resource itself, a resource's ``subject``/``patient``
reference to a Patient, the Patient compartment of the path, and a search's patient
parameters. Search *results* are not opened: BALP's query patterns record the request,
not the content of what came back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

#: the elements by which a resource usually belongs to a patient
_LINKS = ("subject", "patient")
#: search parameters whose values name a patient (``patient=123``, ``subject=Patient/1``)
_PARAMS = ("patient", "subject", "patient:Patient", "subject:Patient")


def patient_id(reference: str) -> str | None:
    """The id of a reference to a Patient (relative or absolute, versioned or not)."""
    parts = reference.split("?", 1)[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return parts[-1]
    return None


def of_resource(resource: Any) -> list[str]:
    """The patients a resource is, or belongs to through ``subject``/``patient``."""
    if not isinstance(resource, dict):
        return []
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return [rid] if isinstance(rid, str) else []
    out: list[str] = []
    for name in _LINKS:
        value = resource.get(name)
        for ref in value if isinstance(value, list) else [value]:
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                found = patient_id(ref["reference"])
                if found is not None:
                    out.append(found)
    return out


def of_text(text: str | None, resource_type: str) -> list[str]:
    """:func:`of_resource` of stored JSON text; only parsed when it can name a patient
    (a Patient's id is known without it)."""
    if not text or (resource_type != "Patient" and '"Patient/' not in text
                    and "/Patient/" not in text):
        return []
    try:
        return of_resource(orjson.loads(text))
    except orjson.JSONDecodeError:
        return []


def of_query(resource_type: str | None, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Patients named by a search's parameters (and ``_id`` of a Patient search)."""
    out: list[str] = []
    for name, value in pairs:
        if name in _PARAMS or (name == "_id" and resource_type == "Patient"):
            for one in value.split(","):
                one = one.strip()
                if not one:
                    continue
                if "/" in one:
                    found = patient_id(one)
                    if found is not None:
                        out.append(found)
                elif name != "subject":  # a bare subject id may be a Group's
                    out.append(one)
    return out


def of_path(params: dict[str, str]) -> list[str]:
    """The patient of a Patient instance or compartment path."""
    if params.get("compartment") == "Patient" and params.get("id"):
        return [params["id"]]
    if params.get("resource_type") == "Patient" and params.get("id"):
        return [params["id"]]
    return []


def merged(*groups: Sequence[str]) -> list[str]:
    """The patients of every group, each once, in order."""
    return list(dict.fromkeys(p for group in groups for p in group))
