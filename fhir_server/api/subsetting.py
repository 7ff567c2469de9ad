"""``_summary`` and ``_elements`` on responses holding one stored resource."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.deps import context
from fhir_server.http.responses import Negotiated, fhir_response
from fhir_server.service import subsetting


def subset_response(request: Request, content: str, neg: Negotiated,
                    headers: dict[str, str]) -> Response | None:
    """The subsetted resource when ``_summary``/``_elements`` ask for one, else None."""
    if not request.scope.get("query_string"):
        return None  # most reads: no need to parse a query string
    query = request.query_params
    summary = query.get("_summary")
    elements = query.get("_elements")
    if summary is None and elements is None:
        return None
    definitions = context(request).definitions
    resource = orjson.loads(content)
    if summary is not None:
        resource = subsetting.summarize(resource, summary, definitions)
    if elements is not None:
        names = [n.strip() for n in elements.split(",") if n.strip()]
        resource = subsetting.select_elements(resource, names, definitions)
    return fhir_response(resource, neg, 200, headers)
