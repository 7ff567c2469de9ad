"""The resource validator: one compiled schema for all R4 resource types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from fhir_server.definitions import Definitions
from fhir_server.definitions.loader import release_memory
from fhir_server.errors import Issue, Unprocessable
from fhir_server.paths import data_dir
from fhir_server.terminology import Terminology, expand_packed
from fhir_server.validation.invariants import Invariants
from fhir_server.validation.messages import REQUIRED, STRUCTURE, Translator
from fhir_server.validation.profiles import ProfileSet
from fhir_server.validation.profiles.loader import CORE_PREFIX
from fhir_server.validation.schema import BINDING_KEYWORD, SchemaBuilder
from fhir_server.validation.tolerances import apply_tolerances

SCHEMA_FILE = "fhir.schema.json"
#: Severities that refuse a write (``warning`` and ``information`` do not).
BLOCKING = frozenset({"fatal", "error"})


def binding_keyword(terminology: Terminology) -> type:
    """The ``fhirBinding`` keyword class: Coding/CodeableConcept in a required value set."""

    class CodedBinding:
        """Checks one Coding or CodeableConcept against an expanded value set."""

        def __init__(self, parent_schema: dict[str, Any], value: str,
                     schema_path: list[str | int]) -> None:
            self.url = value
            self.codes = terminology.expansion(value) or frozenset()

        def validate(self, instance: Any) -> None:
            """Raise ValueError unless some coding is a member of the value set."""
            if not isinstance(instance, dict):
                return  # the type check reports it
            codings = instance.get("coding") if "coding" in instance else [instance]
            for coding in codings if isinstance(codings, list) else ():
                if isinstance(coding, dict) and \
                        (coding.get("system"), coding.get("code")) in self.codes:
                    return
            raise ValueError(f"no coding from the required value set {self.url}")

    return CodedBinding


class Validator:
    """Validates resources against the R4 definitions; build once with :meth:`load`.

    :meth:`issues` is the one pipeline: every check a resource goes through (the
    schema, then each further stage) reports there, errors and warnings alike. Writes
    call :meth:`validate`, which raises :class:`~fhir_server.errors.Unprocessable`
    (HTTP 422) when an issue is an error, including a missing or unknown
    ``resourceType``; ``$validate`` answers :meth:`issues` as they are. Each issue
    carries a FHIRPath-like expression rooted at the resource type
    (``Patient.contained[0].name``).
    """

    def __init__(self, schema: jsonschema_rs.Validator, resource_types: frozenset[str],
                 labels: dict[tuple[str, ...], str], definitions: Definitions,
                 profile_set: ProfileSet | None = None,
                 invariants: Invariants | None = None) -> None:
        self._schema = schema
        self._types = resource_types
        self._labels = labels
        self.definitions = definitions
        #: the profiles of ``profiles/*/`` and PROFILES_DIR (None: none are checked)
        self.profile_set = profile_set
        #: the base definitions' invariants (None: VALIDATE_INVARIANTS=false)
        self.invariants = invariants

    @property
    def profiles(self) -> Mapping[str, Any]:
        """The known profiles by canonical URL (not the base definitions)."""
        return self.profile_set.profiles if self.profile_set is not None else {}

    @classmethod
    def load(cls, profiles_dir: Path | None = None, *, definitions: Definitions | None = None,
             strict: bool = False, profiles: ProfileSet | None = None,
             invariants: Invariants | bool = True) -> Validator:
        """Compile the validator from the profiles folder (default: the shipped one).

        ``definitions`` re-uses an already loaded :class:`Definitions`. ``strict`` turns
        off the tolerances for known defects of the published examples (see
        :mod:`fhir_server.validation.tolerances`). ``invariants``: an evaluator to use
        (the one ``profiles`` checks its invariants with), True to build one, False for
        none (the base definitions' invariants are then not evaluated).
        """
        folder = profiles_dir or data_dir("profiles")
        defs = definitions or Definitions.load(folder)
        urls = sorted(set(defs.required_bindings().values()))
        terminology = Terminology.unpack(expand_packed(folder, urls))
        release_memory()
        builder = SchemaBuilder(orjson.loads((folder / SCHEMA_FILE).read_bytes()), defs,
                                terminology)
        document = builder.build()
        if not strict:
            apply_tolerances(document)
        compiled = jsonschema_rs.validator_for(
            document, keywords={BINDING_KEYWORD: binding_keyword(terminology)})
        del document
        if invariants is True:
            invariants = Invariants.load(defs, folder, strict)
        validator = cls(compiled, defs.resource_types, builder.mandatory_labels, defs,
                        profiles, invariants or None)
        del builder
        release_memory()
        return validator

    def issues(self, resource: Any, profiles: Sequence[str] = ()) -> list[Issue]:
        """Every problem found in ``resource`` (empty when it is valid), of any severity:
        the structure and bindings of the R4 definitions, their invariants (on a
        resource whose structure is valid), then each profile named in ``profiles``
        (canonical URLs; an unknown one is an error issue) besides those the resource
        declares and those required of its type (profiles are checked on a resource
        the base definitions accept)."""
        found = self._structure(resource)
        if found is None:
            return self._not_a_resource(resource)
        if self.invariants is not None and not found:
            found = self.invariants.issues(resource)
        resource_type = resource["resourceType"]
        named: list[str] = []
        for url in profiles:
            found += self._named(resource_type, url, named)
        if self.profile_set is not None and not any(i.severity in BLOCKING for i in found):
            found += self.profile_set.issues(resource, named)
        return found

    def _not_a_resource(self, resource: Any) -> list[Issue]:
        if not isinstance(resource, dict):
            return [Issue(STRUCTURE, "a resource must be a JSON object")]
        resource_type = resource.get("resourceType")
        if resource_type is None:
            return [Issue(REQUIRED, "missing resourceType", expression=("resourceType",))]
        return [Issue(STRUCTURE, f"unknown resource type {resource_type!r}",
                      expression=("resourceType",))]

    def _structure(self, resource: Any) -> list[Issue] | None:
        """The schema's issues; None when ``resource`` is no resource of a known type."""
        if not isinstance(resource, dict):
            return None
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str) or resource_type not in self._types:
            return None
        try:
            if self._schema.is_valid(resource):
                return []  # the fast path: one call into the compiled schema
            return Translator(resource_type, self._labels, resource).translate(
                self._schema.iter_errors(resource))
        except (TypeError, ValueError, OverflowError) as exc:
            # Only reachable with objects JSON parsing never makes (non-string keys...).
            return [Issue(STRUCTURE, f"not a JSON resource: {exc}")]

    def _named(self, resource_type: str, url: str, named: list[str]) -> list[Issue]:
        """A profile asked for by name (``$validate?profile=``): appended to ``named``
        when known and of the type; else the issue that says why not."""
        canonical = url.split("|")[0]  # a version suffix names the one we have
        where = (f"{resource_type}.meta.profile",)
        if canonical.startswith(CORE_PREFIX) and canonical[len(CORE_PREFIX):] in self._types:
            base_type = canonical[len(CORE_PREFIX):]
            if base_type == resource_type:
                return []  # the base definition: what the schema checked
            return [Issue(STRUCTURE, f"the profile {url} is for {base_type}, not "
                          f"{resource_type}", expression=(resource_type,))]
        profile = self.profiles.get(canonical)
        if profile is None:
            return [Issue("not-supported", f"the profile {url} is not known to this server",
                          expression=where)]
        if profile.type != resource_type:
            return [Issue(STRUCTURE, f"the profile {url} is for {profile.type}, not "
                          f"{resource_type}", expression=(resource_type,))]
        named.append(canonical)
        return []

    def validate(self, resource: dict[str, Any]) -> list[Issue]:
        """Raise :class:`Unprocessable` listing every issue when one is an error;
        otherwise return the issues (warnings, information: none refuses a write)."""
        found = self.issues(resource)
        if not any(issue.severity in BLOCKING for issue in found):
            return found
        errors = [issue for issue in found if issue.severity in BLOCKING]
        first = errors[0].diagnostics
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise Unprocessable(f"invalid resource: {first}{more}", issues=found)
