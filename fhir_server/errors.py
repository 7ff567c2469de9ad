"""One error hierarchy for the whole server.

Every expected failure is a :class:`FhirError` carrying the HTTP status and the
OperationOutcome issue code; ``fhir_server.http.outcome`` renders it in exactly one
place. Nothing here imports other modules of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Render as an ``OperationOutcome.issue`` element."""
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class FhirError(Exception):
    """An error answered with ``status`` and an OperationOutcome.

    Subclasses fix ``status`` and the issue ``code``; a bare FhirError may set both.
    """

    status: int = 500
    code: str = "exception"

    def __init__(self, diagnostics: str, issues: list[Issue] | None = None,
                 headers: dict[str, str] | None = None, *, status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(diagnostics)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.diagnostics = diagnostics
        self.issues = issues or [Issue(self.code, diagnostics)]
        self.headers = headers or {}

    def operation_outcome(self) -> dict[str, Any]:
        """The OperationOutcome resource describing this error."""
        return {
            "resourceType": "OperationOutcome",
            "issue": [issue.to_json() for issue in self.issues],
        }


class BadRequest(FhirError):
    """400: the request could not be understood (syntax, parameters)."""

    status = 400
    code = "invalid"


class Unauthorized(FhirError):
    """401: no valid access token; ``WWW-Authenticate`` says how to present one."""

    status = 401
    code = "login"

    def __init__(self, diagnostics: str, error: str | None = "invalid_token") -> None:
        # RFC 6750 3.1: no error code when the request had no credentials at all.
        challenge = 'Bearer realm="fhir"'
        if error:
            detail = diagnostics.replace("\\", "").replace('"', "'")
            challenge += f', error="{error}", error_description="{detail}"'
        super().__init__(diagnostics, headers={"WWW-Authenticate": challenge})


class Forbidden(FhirError):
    """403: the token is valid but its scopes do not allow this."""

    status = 403
    code = "forbidden"

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics, headers={
            "WWW-Authenticate": 'Bearer realm="fhir", error="insufficient_scope"'})


class NotFound(FhirError):
    """404: unknown resource type, id or version."""

    status = 404
    code = "not-found"


class MethodNotAllowed(FhirError):
    """405: the interaction is not supported on this path."""

    status = 405
    code = "not-supported"


class NotAcceptable(FhirError):
    """406: no representation the client accepts."""

    status = 406
    code = "not-supported"


class Conflict(FhirError):
    """409: version conflict or duplicate."""

    status = 409
    code = "conflict"


class Gone(FhirError):
    """410: the resource was deleted."""

    status = 410
    code = "deleted"


class PreconditionFailed(FhirError):
    """412: If-Match or another precondition failed."""

    status = 412
    code = "conflict"


class PayloadTooLarge(FhirError):
    """413: the body (or what it would make) exceeds the configured limit: ``too-long``;
    ``too-costly`` for the work it would take (searches in a Bundle, PATCH copies)."""

    status = 413
    code = "too-long"


class UnsupportedMediaType(FhirError):
    """415: the body's content type is not a FHIR JSON type."""

    status = 415
    code = "not-supported"


class RangeNotSatisfiable(FhirError):
    """416: no byte of the requested range exists; ``Content-Range`` gives the size."""

    status = 416
    code = "invalid"

    def __init__(self, diagnostics: str, size: int) -> None:
        super().__init__(diagnostics, headers={"Content-Range": f"bytes */{size}"})


class Unprocessable(FhirError):
    """422: the resource is well-formed but violates the FHIR definitions."""

    status = 422
    code = "processing"


class ServiceUnavailable(FhirError):
    """503: the database or another dependency is unavailable."""

    status = 503
    code = "transient"


class Timeout(FhirError):
    """503 with issue code ``timeout``: a statement ran past its limit."""

    status = 503
    code = "timeout"
