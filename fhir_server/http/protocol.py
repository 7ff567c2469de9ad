"""uvicorn's httptools protocol, with its own refusals rendered as FHIR answers.

A request the HTTP parser refuses never reaches the app, so uvicorn answers it itself
with a text/plain 400. Clients of a FHIR server expect an OperationOutcome, and a URL
past what the parser can take (65,535 bytes: httptools keeps URL offsets in 16 bits) is
a 414 URI Too Long, with a hint to send the query as a ``POST _search`` form instead.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The longest URL httptools can split into path and query.
MAX_URL_BYTES = 65_535


def refusal(status: int, diagnostics: str) -> bytes:
    """A complete HTTP/1.1 response carrying a one-issue OperationOutcome."""
    reason = {400: b"Bad Request", 414: b"URI Too Long"}[status]
    code = "too-long" if status == 414 else "structure"
    body = orjson.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": code, "diagnostics": diagnostics}]})
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/fhir+json; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, reason, len(body)))
    return head + body


class FhirHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn --http`` for this server: parser refusals as OperationOutcomes."""

    def send_400_response(self, msg: str) -> None:
        """The parser's refusal: 414 for an over-long URL, 400 otherwise."""
        url = getattr(self, "url", b"")
        if len(url) > MAX_URL_BYTES:
            answer = refusal(414, f"the URL is {len(url):,} bytes, past the "
                                  f"{MAX_URL_BYTES:,} this server takes; send a long search "
                                  "as POST [base]/[type]/_search with a form body")
        else:
            answer = refusal(400, "the request is not valid HTTP/1.1")
        self.transport.write(answer)
        self.transport.close()
