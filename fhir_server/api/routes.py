"""The route table: every FHIR interaction the server answers, in one place.

HTTP (``fhir_server.http.adapter``) and Bundle entries (``api.bundle``) are dispatched
through it; metrics and logs are labelled with its templates and interaction names; the
OpenAPI document (``api.openapi``) and the CapabilityStatement (``api.capabilities``)
are generated from it. Nothing else names a route. Paths are relative to the FHIR base;
``{resource_type}``, ``{id}``, ``{vid}``, ``{compartment}``, ``{job_id}``, ``{file}`` are
parameters
(their shapes are in ``router.PARAM_PATTERNS``); literal segments win over parameters.
"""

from __future__ import annotations

from fhir_server.api import (
    binary,
    bundle,
    capabilities,
    definitions,
    everything,
    export,
    history,
    instance,
    operations,
    search,
    terminology,
    type,
    validate,
)
from fhir_server.api.router import (
    ADMIN,
    SIGNED_IN,
    Operation,
    OperationParameter,
    Route,
    Router,
)

REINDEX = Operation(
    "reindex", "OperationDefinition/reindex",
    "Rebuilds the search index of every resource (or of one type) in the background, "
    "with the search parameters of the moment (API-defined SearchParameters become "
    "searchable when it finishes). Answers 202 with Content-Location: the job's status "
    "URL, [base]/_jobs/[id], whose GET reports progress as Parameters and whose DELETE "
    "cancels the job. One job per scope (every type, or one type) is queued or running "
    "at a time: while one is, asking again answers 202 with that job's Content-Location "
    "(409 when it is running and does not build a SearchParameter stored after it "
    "started). Needs the admin scope (system/*.*).",
    affects_state=True,
    parameters=(
        OperationParameter("job", "out", "string", 1, "1", "the job's id"),
        OperationParameter("status", "out", "code", 1, "1",
                           "queued | running | done | failed | cancelled"),
        OperationParameter("processed", "out", "integer", 1, "1",
                           "resources reindexed so far"),
        OperationParameter("total", "out", "integer", 0, "1",
                           "resources to reindex (counted when the job was queued)"),
    ),
)

EVERYTHING = Operation(
    "everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    "The patient's record: the Patient, every resource of its compartment and the "
    "resources they refer to (Practitioner, Organization, Location, Medication, ...), as "
    "a searchset Bundle paged with next links. start/end bound the care date (the date "
    "search parameter) of the types that have one; _since the last update; _type the "
    "types returned.",
    affects_state=False,
    parameters=(
        OperationParameter("start", "in", "date", 0, "1", "care dates from"),
        OperationParameter("end", "in", "date", 0, "1", "care dates up to"),
        OperationParameter("_since", "in", "instant", 0, "1", "changed since"),
        OperationParameter("_type", "in", "code", 0, "*", "resource types to return"),
        OperationParameter("_count", "in", "integer", 0, "1", "resources per page"),
        OperationParameter("return", "out", "Bundle", 1, "1", "a searchset Bundle"),
    ),
)

EXPORT = Operation(
    "export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    "Bulk Data export (https://hl7.org/fhir/uv/bulkdata/): with 'Prefer: respond-async', "
    "answers 202 with Content-Location, the job's status URL [base]/_jobs/[id]: 202 with "
    "X-Progress and Retry-After while it runs, then 200 with the manifest, whose output "
    "files (NDJSON, one per type and up to EXPORT_FILE_LINES resources) are read from "
    "[base]/_jobs/[id]/[file] with the same token; DELETE cancels. System level: what "
    "the token may read; Patient level: every patient's compartment; Group level: the "
    "compartments of the Group's member Patients.",
    affects_state=False,
    parameters=(
        OperationParameter("_outputFormat", "in", "string", 0, "1",
                           "application/fhir+ndjson (or application/ndjson, ndjson)"),
        OperationParameter("_since", "in", "instant", 0, "1", "changed since"),
        OperationParameter("_type", "in", "string", 0, "*", "resource types to export"),
        OperationParameter("_typeFilter", "in", "string", 0, "*",
                           "a search query per type, [type]?[query] (one per type)"),
    ),
)

VALIDATE = Operation(
    "validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    "Validates a resource as a write would, and stores nothing: the structure, "
    "cardinalities, value formats and required bindings of the R4 definitions (what "
    "every write checks), a profile when one is named, and what the mode adds: create "
    "and update the caller's permission, update the id and that the resource exists, "
    "delete the reasons a deletion would be refused. The answer is an OperationOutcome, "
    "200 even for an invalid resource (each issue names its element in expression; "
    "'All OK' when there is none); 400, 404 or 410 only for a request that cannot be "
    "answered. POST [type]/$validate takes a Parameters body or the bare resource; "
    "[type]/[id]/$validate validates the stored resource (GET), or the one given "
    "against it.",
    affects_state=False,
    parameters=(
        OperationParameter("resource", "in", "Resource", 0, "1",
                           "the resource to validate (at instance level: the stored "
                           "one when none is given)"),
        OperationParameter("mode", "in", "code", 0, "1",
                           "create | update | delete: validate as that interaction"),
        OperationParameter("profile", "in", "uri", 0, "1",
                           "the canonical URL of a StructureDefinition to validate "
                           "against (a profile in profiles/, or a type's base)"),
        OperationParameter("return", "out", "OperationOutcome", 1, "1",
                           "the issues found, or one 'All OK' information issue"),
    ),
)

_VS_IN = (
    OperationParameter("url", "in", "uri", 0, "1",
                       "the canonical URL of a value set the server knows (the FHIR "
                       "specification's, or one in its profile folders)"),
    OperationParameter("valueSetVersion", "in", "string", 0, "1",
                       "the value set's version (the one the server holds)"),
    OperationParameter("valueSet", "in", "ValueSet", 0, "1",
                       "a value set given in the request (POST)"),
)

EXPAND = Operation(
    "expand", "http://hl7.org/fhir/OperationDefinition/ValueSet-expand",
    "Expands a value set from the code systems the server holds (the FHIR "
    "specification's CodeSystems and those of its profile folders): the ValueSet with "
    "expansion.total, offset, parameter and contains (system, code, display; nested "
    "concepts flattened in definition order). filter keeps codes whose code or display "
    "contains it (case-insensitively); count and offset page. A value set drawing on a "
    "code system the server does not hold (SNOMED CT, LOINC, UCUM) by filter or as a "
    "whole answers 422 (not-supported, too-costly for grammars such as UCUM).",
    affects_state=False,
    parameters=(
        *_VS_IN,
        OperationParameter("filter", "in", "string", 0, "1",
                           "a case-insensitive substring of code or display"),
        OperationParameter("count", "in", "integer", 0, "1", "codes to return"),
        OperationParameter("offset", "in", "integer", 0, "1", "codes to skip"),
        OperationParameter("includeDesignations", "in", "boolean", 0, "1",
                           "add the concepts' designations"),
        OperationParameter("return", "out", "ValueSet", 1, "1",
                           "the value set with its expansion"),
    ),
)

VALIDATE_CODE = Operation(
    "validate-code", "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
    "Whether a code (code and system, a coding, or a codeableConcept) is in a value set "
    "the server can expand: result, message (why not; or that a given display differs), "
    "display.",
    affects_state=False,
    parameters=(
        *_VS_IN,
        OperationParameter("code", "in", "code", 0, "1", "the code to check"),
        OperationParameter("system", "in", "uri", 0, "1", "the code's system"),
        OperationParameter("display", "in", "string", 0, "1", "the display to check"),
        OperationParameter("coding", "in", "Coding", 0, "1", "a coding to check"),
        OperationParameter("codeableConcept", "in", "CodeableConcept", 0, "1",
                           "valid when one of its codings is"),
        OperationParameter("result", "out", "boolean", 1, "1", "whether it is valid"),
        OperationParameter("message", "out", "string", 0, "1", "why not, or a warning"),
        OperationParameter("display", "out", "string", 0, "1", "the code's display"),
    ),
)

LOOKUP = Operation(
    "lookup", "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup",
    "A code's details in a code system the server holds: name, version, display, "
    "definition, designation, and property (the concept's own, parent and child from "
    "the hierarchy, inactive).",
    affects_state=False,
    parameters=(
        OperationParameter("code", "in", "code", 0, "1", "the code"),
        OperationParameter("system", "in", "uri", 0, "1", "the code system"),
        OperationParameter("version", "in", "string", 0, "1", "the code system's version"),
        OperationParameter("coding", "in", "Coding", 0, "1", "the code as a coding"),
        OperationParameter("name", "out", "string", 1, "1", "the code system's name"),
        OperationParameter("version", "out", "string", 0, "1", "its version"),
        OperationParameter("display", "out", "string", 1, "1", "the code's display"),
        OperationParameter("designation", "out", "", 0, "*", "language, use, value"),
        OperationParameter("property", "out", "", 0, "*", "code, value"),
    ),
)

SUBSUMES = Operation(
    "subsumes", "http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes",
    "How code A relates to code B in a code system the server holds (concept nesting "
    "and parent/subsumedBy properties read as is-a): equivalent, subsumes, subsumed-by "
    "or not-subsumed.",
    affects_state=False,
    parameters=(
        OperationParameter("codeA", "in", "code", 0, "1", "code A"),
        OperationParameter("codeB", "in", "code", 0, "1", "code B"),
        OperationParameter("system", "in", "uri", 0, "1", "their code system"),
        OperationParameter("version", "in", "string", 0, "1", "its version"),
        OperationParameter("codingA", "in", "Coding", 0, "1", "code A as a coding"),
        OperationParameter("codingB", "in", "Coding", 0, "1", "code B as a coding"),
        OperationParameter("outcome", "out", "code", 1, "1",
                           "equivalent | subsumes | subsumed-by | not-subsumed"),
    ),
)

#: the terminology operations' routes: GET (query) and POST (a Parameters body) each;
#: the content is the server's catalog, not patient data, so any token may ask
_TERMINOLOGY = tuple(
    Route(method, path, "operation", handler,
          f"{summary}{' (Parameters body)' if method == 'POST' else ''}", operation=op,
          access=SIGNED_IN)
    for path, handler, op, summary in (
        ("ValueSet/$expand", terminology.expand_type, EXPAND, "Expand a value set ($expand)"),
        ("ValueSet/{id}/$expand", terminology.expand_instance, EXPAND,
         "Expand a value set by id ($expand)"),
        ("ValueSet/$validate-code", terminology.validate_code_type, VALIDATE_CODE,
         "Check a code against a value set ($validate-code)"),
        ("ValueSet/{id}/$validate-code", terminology.validate_code_instance, VALIDATE_CODE,
         "Check a code against a value set by id ($validate-code)"),
        ("CodeSystem/$lookup", terminology.lookup, LOOKUP,
         "Look up a code in a code system ($lookup)"),
        ("CodeSystem/$subsumes", terminology.subsumes, SUBSUMES,
         "Test subsumption of two codes ($subsumes)"),
    )
    for method in ("GET", "POST"))

ROUTES: tuple[Route, ...] = (
    # -- system level --------------------------------------------------------------------
    Route("GET", "metadata", "capabilities", capabilities.capabilities,
          "The server's CapabilityStatement"),
    Route("POST", "", "transaction/batch", bundle.process_bundle,
          "Process a batch or transaction Bundle", in_bundle=False),
    Route("GET", "", "search-system", search.search_system,
          "Search across resource types (_type names them)"),
    Route("POST", "_search", "search-system", search.search_system,
          "Search across resource types, parameters in a form body"),
    Route("GET", "_history", "history-system", history.history_system,
          "History of every resource"),
    Route("POST", "$reindex", "operation", operations.reindex_system,
          "Rebuild the search index of every resource ($reindex)", operation=REINDEX,
          access=ADMIN),
    Route("GET", "$export", "operation", export.export_system,
          "Bulk Data export of every resource the caller may read ($export)",
          operation=EXPORT, access="r", in_bundle=False),
    Route("POST", "$export", "operation", export.export_system,
          "Bulk Data export ($export), parameters in a Parameters body",
          operation=EXPORT, access="r", in_bundle=False),
    # A job is its client's (an export) or the admin's ($reindex): the handlers check.
    Route("GET", "_jobs/{job_id}", "operation", operations.job_status,
          "The progress of a background job (an export's manifest when done)",
          access=SIGNED_IN),
    Route("DELETE", "_jobs/{job_id}", "operation", operations.cancel_job,
          "Cancel a queued or running background job", access=SIGNED_IN),
    Route("GET", "_jobs/{job_id}/{file}", "operation", export.export_file,
          "One NDJSON file of a finished export", access=SIGNED_IN, raw=True,
          in_bundle=False),
    Route("GET", "OperationDefinition/{id}", "read", definitions.read_definition,
          "Read an OperationDefinition (those of this server's operations included)",
          access=SIGNED_IN),
    Route("GET", "OperationDefinition", "search-type", definitions.search_definitions,
          "Search OperationDefinitions (those of this server's operations included)"),
    # -- Binary: raw content of any type in and out, besides FHIR JSON ------------------
    # A Binary is read by who may read it or what its securityContext names (the
    # service checks that), so its reads only need a token here.
    Route("POST", "Binary", "create", binary.create_binary,
          "Create a Binary from raw content (any Content-Type) or FHIR JSON", raw=True),
    Route("PUT", "Binary/{id}", "update", binary.update_binary,
          "Update a Binary with raw content or FHIR JSON", raw=True),
    Route("GET", "Binary/{id}", "read", binary.read_binary,
          "Read a Binary: its raw bytes (ranges too), or FHIR JSON when Accept asks",
          raw=True, access=SIGNED_IN),
    Route("GET", "Binary/{id}/_history/{vid}", "vread", binary.vread_binary,
          "Read one version of a Binary: raw bytes or FHIR JSON", raw=True,
          access=SIGNED_IN),
    Route("GET", "Binary", "search-type", binary.search_binary, "Search Binary resources"),
    Route("POST", "Binary/_search", "search-type", binary.search_binary,
          "Search Binary resources, parameters in a form body"),
    Route("GET", "Binary/_history", "history-type", binary.history_binary,
          "History of every Binary"),
    # -- type level ----------------------------------------------------------------------
    Route("GET", "{resource_type}", "search-type", search.search_type,
          "Search resources of a type"),
    Route("POST", "{resource_type}/_search", "search-type", search.search_type,
          "Search resources of a type, parameters in a form body"),
    Route("POST", "{resource_type}", "create", type.create,
          "Create a resource (If-None-Exist makes it conditional)"),
    Route("PUT", "{resource_type}", "conditional-update", type.conditional_update,
          "Update the single resource matching the query, or create it"),
    Route("PATCH", "{resource_type}", "conditional-patch", type.conditional_patch,
          "Patch the single resource matching the query"),
    Route("DELETE", "{resource_type}", "conditional-delete", type.conditional_delete,
          "Delete the single resource matching the query"),
    Route("GET", "{resource_type}/_history", "history-type", history.history_type,
          "History of every resource of a type"),
    Route("POST", "{resource_type}/$reindex", "operation", operations.reindex_type,
          "Rebuild the search index of one type ($reindex)", operation=REINDEX,
          access=ADMIN),
    Route("POST", "{resource_type}/$validate", "operation", validate.validate_type,
          "Validate a resource, storing nothing ($validate)", operation=VALIDATE,
          access=SIGNED_IN),
    # -- instance level ------------------------------------------------------------------
    Route("GET", "{resource_type}/{id}", "read", instance.read,
          "Read the current version of a resource"),
    Route("PUT", "{resource_type}/{id}", "update", instance.update,
          "Update a resource (or create it with this id)"),
    Route("PATCH", "{resource_type}/{id}", "patch", instance.patch,
          "Patch a resource (JSON Patch or FHIRPath Patch)"),
    Route("DELETE", "{resource_type}/{id}", "delete", instance.delete,
          "Delete a resource"),
    Route("GET", "{resource_type}/{id}/_history", "history-instance",
          history.history_instance, "History of one resource"),
    Route("GET", "{resource_type}/{id}/_history/{vid}", "vread", instance.vread,
          "Read one version of a resource"),
    Route("GET", "Patient/$export", "operation", export.export_patient,
          "Bulk Data export of every patient's compartment ($export)", operation=EXPORT,
          access="r", in_bundle=False),
    Route("POST", "Patient/$export", "operation", export.export_patient,
          "Bulk Data export of every patient's compartment, parameters in a body",
          operation=EXPORT, access="r", in_bundle=False),
    Route("GET", "Group/{id}/$export", "operation", export.export_group,
          "Bulk Data export of a Group's member patients ($export)", operation=EXPORT,
          access="r", in_bundle=False),
    Route("POST", "Group/{id}/$export", "operation", export.export_group,
          "Bulk Data export of a Group's member patients, parameters in a body",
          operation=EXPORT, access="r", in_bundle=False),
    Route("GET", "Patient/{id}/$everything", "operation", everything.everything_instance,
          "The patient's record ($everything)", operation=EVERYTHING, access="r"),
    Route("POST", "Patient/{id}/$everything", "operation", everything.everything_instance,
          "The patient's record ($everything), parameters in a Parameters body",
          operation=EVERYTHING, access="r"),
    Route("GET", "{resource_type}/{id}/$validate", "operation", validate.validate_instance,
          "Validate a stored resource ($validate)", operation=VALIDATE, access="r"),
    Route("POST", "{resource_type}/{id}/$validate", "operation", validate.validate_instance,
          "Validate a resource (or its update or deletion) against a stored one "
          "($validate)", operation=VALIDATE, access="r"),
    *_TERMINOLOGY,
    # -- compartments --------------------------------------------------------------------
    Route("GET", "{compartment}/{id}/{resource_type}", "search-compartment",
          search.search_compartment, "Search one type in a compartment"),
    Route("GET", "{compartment}/{id}/*", "search-compartment",
          search.search_compartment_all, "Search every type in a compartment"),
)

#: The router over the table (it holds no state but the table).
ROUTER = Router(ROUTES)
