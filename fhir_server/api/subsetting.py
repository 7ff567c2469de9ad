"""``_summary`` and ``_elements`` on answers holding one stored resource."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.api.messages import FhirRequest
from fhir_server.service import subsetting
from fhir_server.service.context import ServiceContext


def subset(request: FhirRequest, ctx: ServiceContext, content: str) -> dict[str, Any] | None:
    """The subsetted resource when ``_summary``/``_elements`` ask for one, else None."""
    if not request.query:
        return None  # most reads: no need to parse a query string
    summary = request.query_value("_summary")
    elements = request.query_value("_elements")
    if summary is None and elements is None:
        return None
    resource = orjson.loads(content)
    if summary is not None:
        resource = subsetting.summarize(resource, summary, ctx.definitions)
    if elements is not None:
        names = [n.strip() for n in elements.split(",") if n.strip()]
        resource = subsetting.select_elements(resource, names, ctx.definitions)
    result: dict[str, Any] = resource
    return result
