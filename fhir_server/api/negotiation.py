"""Content negotiation: which media type to answer with, which bodies to accept.

FHIR R4 serves ``application/fhir+json`` and ``application/fhir+xml``; ``application/json``
and ``application/xml`` / ``text/xml`` (and the DSTU2-era ``application/json+fhir`` and
``application/xml+fhir``) are accepted as synonyms (http.html#mime-type). Turtle is not
served: a client that accepts only it gets 406. Without a preference, JSON.
"""

from __future__ import annotations

from fhir_server.errors import NotAcceptable, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
FHIR_XML = "application/fhir+xml"
XML = "application/xml"

#: ``_format`` shorthands and full media types we can answer with, to the type we send.
_JSON_FORMATS = {
    "json": FHIR_JSON,
    FHIR_JSON: FHIR_JSON,
    JSON: JSON,
    "application/json+fhir": FHIR_JSON,
    "text/json": JSON,
}
_XML_FORMATS = {
    "xml": FHIR_XML,
    FHIR_XML: FHIR_XML,
    XML: XML,
    "text/xml": "text/xml",
    "application/xml+fhir": FHIR_XML,
}
_FORMATS = {**_JSON_FORMATS, **_XML_FORMATS}
_WILDCARDS = {"*/*", "application/*", "text/*"}
#: Body media types of FHIR JSON.
BODY_TYPES = {FHIR_JSON, JSON, "application/json+fhir"}
#: Body media types of a resource in XML that cannot be anything else (``application/xml``
#: and ``text/xml`` are a Binary's raw content, a CDA document say, on Binary's routes).
FHIR_XML_BODY_TYPES = {FHIR_XML, "application/xml+fhir"}
#: Body media types of FHIR XML on every other route.
XML_BODY_TYPES = {*FHIR_XML_BODY_TYPES, XML, "text/xml"}


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


def is_xml(media: str) -> bool:
    """Whether a response media type (as :func:`response_media_type` gives) is XML."""
    return media in _XML_ANSWERS


_XML_ANSWERS = frozenset(_XML_FORMATS.values())


def response_media_type(accept: str | None, format_param: str | None) -> str:
    """The media type of the response body, or NotAcceptable.

    ``_format`` wins over ``Accept``. Browsers' ``text/html`` is answered with JSON.
    """
    if format_param:
        media, params = _split(format_param.replace(" ", "+"))
        if media in _FORMATS:
            _check_fhir_version(params, media)
            return _FORMATS[media]
        if media in ("html", "text/html"):
            return FHIR_JSON
        raise NotAcceptable(f"_format {format_param!r} is not supported; use json or xml")
    if not accept:
        return FHIR_JSON
    for media, params in _ranges(accept):
        if media in _FORMATS:
            _check_fhir_version(params, media)
            return _FORMATS[media]
        if media in _WILDCARDS or media == "text/html":
            return FHIR_JSON
    raise NotAcceptable(f"none of the accepted media types ({accept}) can be served; "
                        "this server answers application/fhir+json and application/fhir+xml")


def body_format(content_type: str | None) -> str:
    """``"json"`` or ``"xml"``: the format of a body declared as FHIR JSON or FHIR XML
    in UTF-8 (UnsupportedMediaType otherwise)."""
    if not content_type:
        raise UnsupportedMediaType("Content-Type is required: use application/fhir+json "
                                   "or application/fhir+xml")
    media, params = _split(content_type)
    if media not in BODY_TYPES and media not in XML_BODY_TYPES:
        raise UnsupportedMediaType(f"Content-Type {media} is not supported; use "
                                   "application/fhir+json or application/fhir+xml")
    charset = params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"charset {charset} is not supported; use UTF-8")
    version = params.get("fhirversion")
    if version is not None and version not in ("4.0", "4.0.1"):
        raise UnsupportedMediaType(f"FHIR version {version} is not accepted (only 4.0)")
    return "xml" if media in XML_BODY_TYPES else "json"
