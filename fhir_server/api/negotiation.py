"""Content negotiation: which JSON media type to answer with, which bodies to accept.

FHIR R4 serves ``application/fhir+json``; ``application/json`` (and the DSTU2-era
``application/json+fhir``) are accepted as synonyms. XML is not supported yet, so a
client that accepts only XML gets 406 (http.html#mime-type).
"""

from __future__ import annotations

from fhir_server.errors import NotAcceptable, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
JSON = "application/json"

#: ``_format`` shorthands and full media types we can answer with, to the type we send.
_JSON_FORMATS = {
    "json": FHIR_JSON,
    FHIR_JSON: FHIR_JSON,
    JSON: JSON,
    "application/json+fhir": FHIR_JSON,
    "text/json": JSON,
}
_XML_FORMATS = {"xml", "application/fhir+xml", "application/xml", "text/xml",
                "application/xml+fhir", "ttl", "text/turtle", "application/fhir+turtle"}
_WILDCARDS = {"*/*", "application/*", "text/*"}
#: Body media types accepted on writes.
BODY_TYPES = {FHIR_JSON, JSON, "application/json+fhir"}


def _split(media: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in media.split(";")]
    params: dict[str, str] = {}
    for p in parts[1:]:
        key, _, value = p.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].lower(), params


def _check_fhir_version(params: dict[str, str], media: str) -> None:
    version = params.get("fhirversion")
    if version is not None and version not in ("4.0", "4.0.1"):
        raise NotAcceptable(f"FHIR version {version} is not served here (only 4.0)")


def _ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    """The media ranges of an ``Accept`` header with their parameters, most preferred
    first (by ``q``, then order); ``q=0`` ones left out, a malformed ``q`` taken as 1."""
    ranges = []
    for order, item in enumerate(accept.split(",")):
        if not item.strip():
            continue
        media, params = _split(item)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append((-q, order, media, params))
    return [(media, params) for _, _, media, params in sorted(ranges, key=lambda r: r[:2])]


def accepted(accept: str) -> list[str]:
    """The media ranges of an ``Accept`` header, most preferred first (``q=0`` ones
    left out), lower-cased and without parameters."""
    return [media for media, _ in _ranges(accept)]


def is_fhir_json(media: str) -> bool:
    """Whether a media type (without parameters) names FHIR JSON or one of its synonyms."""
    return media in _JSON_FORMATS


def response_media_type(accept: str | None, format_param: str | None) -> str:
    """The media type of the response body, or NotAcceptable.

    ``_format`` wins over ``Accept``. Browsers' ``text/html`` is answered with JSON.
    """
    if format_param:
        media, params = _split(format_param.replace(" ", "+"))
        if media in _JSON_FORMATS:
            _check_fhir_version(params, media)
            return _JSON_FORMATS[media]
        if media in ("html", "text/html"):
            return FHIR_JSON
        raise NotAcceptable(f"_format {format_param!r} is not supported; use json")
    if not accept:
        return FHIR_JSON
    for media, params in _ranges(accept):
        if media in _JSON_FORMATS:
            _check_fhir_version(params, media)
            return _JSON_FORMATS[media]
        if media in _WILDCARDS or media == "text/html":
            return FHIR_JSON
    raise NotAcceptable(f"none of the accepted media types ({accept}) can be served; "
                        "this server answers application/fhir+json")


def check_body_media_type(content_type: str | None) -> None:
    """Raise UnsupportedMediaType unless the body is declared as FHIR JSON."""
    if not content_type:
        raise UnsupportedMediaType("Content-Type is required: use application/fhir+json")
    media, params = _split(content_type)
    if media not in BODY_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media} is not supported; use application/fhir+json")
    charset = params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"charset {charset} is not supported; use UTF-8")
    version = params.get("fhirversion")
    if version is not None and version not in ("4.0", "4.0.1"):
        raise UnsupportedMediaType(f"FHIR version {version} is not accepted (only 4.0)")
