"""What each interaction of the route table takes and answers, as its handler does
(``fhir_server/api/*.py`` and the services they call): statuses, headers, bodies."""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.api.openapi.components import SPEC

#: Response body kinds: a schema name, ``resource`` (the type's), ``written`` (what a
#: write answers as ``Prefer`` asks) or None (no body).
Ok = tuple[str, str, str | None, tuple[str, ...]]  # status, description, body, headers

_VERSION = ("ETag", "Last-Modified")
_WRITTEN = ("Location", "ETag", "Last-Modified")
_READ_QUERY = ("_summary", "_elements", "_format", "_pretty")
_HISTORY_QUERY = ("_count", "_since", "_at", "_cursor", "_format", "_pretty")
#: Result parameters of a search (each one the parser reads: ``search.parse``).
RESULT_QUERY = ("_count", "_sort", "_include", "_revinclude", "_summary", "_elements",
                "_total", "_cursor", "_format", "_pretty")
_WRITE_ERRORS = ("400", "409", "412", "413", "415", "422")


@dataclass(frozen=True)
class Shape:
    """One interaction's parameters, request body and responses."""

    ok: tuple[Ok, ...]
    errors: tuple[str, ...]
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    #: whether its query takes the type's search parameters (search, or criteria)
    search: bool = False
    #: ``resource``, ``patch``, ``bundle`` or None
    body: str | None = None
    doc: str = ""


def _search(doc: str, *errors: str) -> Shape:
    return Shape((("200", "A `searchset` Bundle (one page)", "Bundle", ()),),
                 ("400", *errors), RESULT_QUERY, ("Prefer-handling",), True,
                 doc=doc + f" See [search]({SPEC}search.html).")


def _history(doc: str, *errors: str) -> Shape:
    return Shape((("200", "A `history` Bundle, newest first", "Bundle", ()),),
                 ("400", *errors), _HISTORY_QUERY, doc=f"{doc} See [history]({SPEC}"
                 "http.html#history).")


_READ = Shape((("200", "The resource", "resource", _VERSION),
               ("304", "", None, ())), ("404", "410"), _READ_QUERY,
              ("If-None-Match", "If-Modified-Since"),
              doc=f"See [read]({SPEC}http.html#read).")
_CRITERIA = ("The query holds the search criteria (at least one parameter); they must "
             "all be understood.")

#: Shapes by (route interaction, operation name): every route's key must be here.
SHAPES: dict[tuple[str, str | None], Shape] = {
    ("capabilities", None): Shape(
        (("200", "The CapabilityStatement", "CapabilityStatement", ()),), ("400",),
        ("capability_mode", "_format", "_pretty"),
        doc=f"See [capabilities]({SPEC}http.html#capabilities) and the `mode` parameter "
        f"of [$capabilities]({SPEC}capabilitystatement-operation-implements.html)."),
    ("transaction/batch", None): Shape(
        (("200", "A `batch-response` or `transaction-response` Bundle", "Bundle", ()),),
        ("400", "404", "409", "412", "413", "415", "422"), ("_format", "_pretty"),
        body="bundle", doc="A transaction runs atomically: the first failing entry fails "
        "it all with that entry's status. A batch answers each entry on its own. See "
        f"[transaction]({SPEC}http.html#transaction)."),
    ("search-system", None): _search(
        "Across types: `_type` names them (default: all); only the parameters every type "
        "has are understood."),
    ("search-type", None): _search(
        "Chains (`subject:Patient.name=x`) and `_has:Type:reference:parameter=x` are "
        "understood too.", "404"),
    ("search-compartment", None): _search(
        f"The resources in one [compartment]({SPEC}compartmentdefinition.html).", "404"),
    ("history-system", None): _history("Every version of every resource."),
    ("history-type", None): _history("Every version of the type's resources.", "404"),
    ("history-instance", None): _history("Every version of one resource.", "404"),
    ("read", None): _READ,
    ("vread", None): Shape(_READ.ok, _READ.errors, _READ.query, _READ.headers,
                           doc=f"See [vread]({SPEC}http.html#vread)."),
    ("create", None): Shape(
        (("201", "Created", "written", _WRITTEN),
         ("200", "`If-None-Exist` matched one resource: nothing written", "written",
          _WRITTEN)), ("400", "412", "413", "415", "422"), ("_format", "_pretty"),
        ("If-None-Exist", "Prefer"), body="resource",
        doc="The server assigns the id. Search criteria belong in `If-None-Exist`, not "
        f"the URL (a 400). See [create]({SPEC}http.html#create)."),
    ("update", None): Shape(
        (("200", "Updated", "written", _WRITTEN),
         ("201", "Created with this id", "written", _WRITTEN)), _WRITE_ERRORS,
        ("_format", "_pretty"), ("If-Match", "Prefer"), body="resource",
        doc=f"The body's id must be the URL's. See [update]({SPEC}http.html#update)."),
    ("conditional-update", None): Shape(
        (("200", "The single match updated", "written", _WRITTEN),
         ("201", "No match: created", "written", _WRITTEN)), _WRITE_ERRORS,
        ("_format", "_pretty"), ("If-Match", "Prefer"), True, "resource",
        f"{_CRITERIA} Several matches are a 412. See [update]({SPEC}http.html#update)."),
    ("patch", None): Shape(
        (("200", "Patched", "written", _WRITTEN),), ("404", *_WRITE_ERRORS),
        ("_format", "_pretty"), ("If-Match", "Prefer"), body="patch",
        doc="JSON Patch or FHIRPath Patch; the result is validated. See "
        f"[patch]({SPEC}http.html#patch)."),
    ("conditional-patch", None): Shape(
        (("200", "The single match patched", "written", _WRITTEN),),
        ("404", *_WRITE_ERRORS), ("_format", "_pretty"), ("If-Match", "Prefer"), True,
        "patch", f"{_CRITERIA} No match is a 404, several a 412. See [patch]({SPEC}"
        "http.html#patch)."),
    ("delete", None): Shape(
        (("204", "Deleted (also when there was nothing to delete)", None, ("ETag",)),
         ("200", "Deleted, with `Prefer: return=OperationOutcome`", "OperationOutcome",
          ("ETag",))), ("404", "412"), (), ("If-Match", "Prefer"),
        doc=f"See [delete]({SPEC}http.html#delete)."),
    ("conditional-delete", None): Shape(
        (("204", "The single match deleted, or no match", None, ("ETag",)),
         ("200", "As 204, with `Prefer: return=OperationOutcome`", "OperationOutcome",
          ("ETag",))), ("400", "412"), (), ("Prefer",), True,
        doc=f"{_CRITERIA} Several matches are a 412. See [delete]({SPEC}"
        "http.html#delete)."),
    ("operation", "reindex"): Shape(
        (("202", "Queued: the job as Parameters", "Parameters", ("Content-Location",)),),
        ("404", "503"), ("_format", "_pretty")),
    ("operation", "everything"): Shape(
        (("200", "A `searchset` Bundle (one page of the record)", "Bundle", ()),),
        ("400", "404"), ("start", "end", "_since", "_type", "_count", "_cursor", "_format",
                         "_pretty"), body="parameters"),
    ("operation", "export"): Shape(
        (("202", "Accepted: poll the status URL in Content-Location (202 with X-Progress "
          "while it runs, 200 with the manifest when done)", "OperationOutcome",
          ("Content-Location",)),),
        ("400", "404", "503"), ("_outputFormat", "_since", "export_type", "_typeFilter"),
        ("Prefer-async",), body="parameters",
        doc="See [Bulk Data export](https://hl7.org/fhir/uv/bulkdata/export.html)."),
    ("operation", "validate"): Shape(
        (("200", "An OperationOutcome: the issues found (each with `expression`), or "
          "one `All OK` information issue; 200 for an invalid resource too",
          "OperationOutcome", ()),),
        ("400", "404", "410", "415"), ("validate_mode", "validate_profile", "_format",
                                       "_pretty"), body="parameters",
        doc=f"See [$validate]({SPEC}resource-operation-validate.html): POST takes a "
        "Parameters body (`resource`, `mode`, `profile`) or the bare resource; nothing "
        "is stored."),
    ("operation", "expand"): Shape(
        (("200", "The ValueSet with its `expansion`", "ValueSet", ()),),
        ("400", "404", "422"), ("tx_url", "tx_valueSetVersion", "tx_filter", "tx_count",
                                "tx_offset", "tx_includeDesignations", "_format", "_pretty"),
        body="parameters", doc=f"See [$expand]({SPEC}valueset-operation-expand.html)."),
    ("operation", "validate-code"): Shape(
        (("200", "Parameters: `result`, `message`, `display`", "Parameters", ()),),
        ("400", "404", "422"), ("tx_url", "tx_valueSetVersion", "tx_code", "tx_system",
                                "tx_display", "tx_coding", "_format", "_pretty"),
        body="parameters",
        doc=f"See [$validate-code]({SPEC}valueset-operation-validate-code.html)."),
    ("operation", "lookup"): Shape(
        (("200", "Parameters: `name`, `display`, `designation`, `property`...",
          "Parameters", ()),),
        ("400", "404"), ("tx_code", "tx_system", "tx_version", "tx_coding", "_format",
                         "_pretty"),
        body="parameters", doc=f"See [$lookup]({SPEC}codesystem-operation-lookup.html)."),
    ("operation", "subsumes"): Shape(
        (("200", "Parameters: `outcome`", "Parameters", ()),),
        ("400", "404"), ("tx_codeA", "tx_codeB", "tx_system", "tx_version", "_format",
                         "_pretty"),
        body="parameters",
        doc=f"See [$subsumes]({SPEC}codesystem-operation-subsumes.html)."),
    ("operation", None): Shape(
        (("200", "The job's progress as Parameters", "Parameters", ()),), ("404", "503"),
        ("_format", "_pretty")),
}
