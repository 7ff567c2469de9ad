"""The resource validator: one compiled schema for all R4 resource types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from fhir_server.definitions import Definitions
from fhir_server.definitions.loader import release_memory
from fhir_server.errors import Issue, Unprocessable
from fhir_server.paths import data_dir
from fhir_server.validation.messages import REQUIRED, STRUCTURE, Translator
from fhir_server.validation.profiles import ProfileSet
from fhir_server.validation.schema import BINDING_KEYWORD, SchemaBuilder
from fhir_server.validation.terminology import Terminology, expand_packed
from fhir_server.validation.tolerances import apply_tolerances

SCHEMA_FILE = "fhir.schema.json"


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

    Errors are reported as :class:`~fhir_server.errors.Unprocessable` (HTTP 422),
    including a missing or unknown ``resourceType``; each issue carries a FHIRPath-like
    expression rooted at the resource type (``Patient.contained[0].name``).
    """

    def __init__(self, schema: jsonschema_rs.Validator, resource_types: frozenset[str],
                 labels: dict[tuple[str, ...], str], definitions: Definitions,
                 profiles: ProfileSet | None = None) -> None:
        self._schema = schema
        self._types = resource_types
        self._labels = labels
        self.definitions = definitions
        self.profiles = profiles

    @classmethod
    def load(cls, profiles_dir: Path | None = None, *, definitions: Definitions | None = None,
             strict: bool = False, profiles: ProfileSet | None = None) -> Validator:
        """Compile the validator from the profiles folder (default: the shipped one).

        ``definitions`` re-uses an already loaded :class:`Definitions`. ``strict`` turns
        off the tolerances for known defects of the published examples (see
        :mod:`fhir_server.validation.tolerances`).
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
        validator = cls(compiled, defs.resource_types, builder.mandatory_labels, defs,
                        profiles)
        del builder
        release_memory()
        return validator

    def issues(self, resource: Any) -> list[Issue]:
        """Every problem found in ``resource`` (empty when it is valid), warnings included."""
        found = self._base_issues(resource)
        if not found and self.profiles is not None:
            found = self.profiles.issues(resource)
        return found

    def _base_issues(self, resource: Any) -> list[Issue]:
        """The problems against the base definitions (the JSON schema and its additions)."""
        if not isinstance(resource, dict):
            return [Issue(STRUCTURE, "a resource must be a JSON object")]
        resource_type = resource.get("resourceType")
        if resource_type is None:
            return [Issue(REQUIRED, "missing resourceType", expression=("resourceType",))]
        if not isinstance(resource_type, str) or resource_type not in self._types:
            return [Issue(STRUCTURE, f"unknown resource type {resource_type!r}",
                          expression=("resourceType",))]
        try:
            if self._schema.is_valid(resource):
                return []
            return Translator(resource_type, self._labels, resource).translate(
                self._schema.iter_errors(resource))
        except (TypeError, ValueError, OverflowError) as exc:
            # Only reachable with objects JSON parsing never makes (non-string keys...).
            return [Issue(STRUCTURE, f"not a JSON resource: {exc}")]

    def validate(self, resource: dict[str, Any]) -> list[Issue]:
        """Raise :class:`Unprocessable` listing every problem (warnings too) when there is
        an error; else return the warnings (an unknown profile, an extensible binding)."""
        found: list[Issue] | None = None
        try:
            if isinstance(resource, dict) and resource.get("resourceType") in self._types \
                    and self._schema.is_valid(resource):
                found = []  # the fast path: one call into the compiled schema
        except (TypeError, ValueError, OverflowError):
            pass  # reported by _base_issues() below
        if found is None:
            found = self._base_issues(resource)
        if not found and self.profiles is not None:
            found = self.profiles.issues(resource)
        errors = [i for i in found if i.severity in ("error", "fatal")]
        if not errors:
            return found
        first = errors[0].diagnostics
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise Unprocessable(f"invalid resource: {first}{more}", issues=found)
