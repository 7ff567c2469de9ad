"""Checking one resource against one profile, issues as comparable tuples."""

from __future__ import annotations

from typing import Any

from fhir_server.validation.profiles import ProfileSet


def check(profiles: ProfileSet, resource: dict[str, Any], url: str) -> list[tuple[str, ...]]:
    """(severity, code, expression, diagnostics) of ``resource`` declaring ``url``."""
    declared = {**resource, "meta": {"profile": [url]}}
    return [(i.severity, i.code, *i.expression, i.diagnostics)
            for i in profiles.issues(declared)]
