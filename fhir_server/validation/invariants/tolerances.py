"""Known defects of the published examples that the default validator only warns about.

Each is a genuine violation of R4 in data this server must accept (the official
examples); the issue is reported as a ``warning`` instead of an error (``$validate``
still shows it; a write is not refused), as narrowly as it can be told apart, and
``Validator.load(..., strict=True)`` keeps it an error. See also
:mod:`fhir_server.validation.tolerances` (the structure stage's).

* txt-2 (a narrative with some content): ``ActivityDefinition-blood-tubes-supply``,
  ``ActivityDefinition-heart-valve-replacement``, ``EventDefinition-example`` and
  ``Questionnaire-zika-virus-exposure-assessment`` have an empty ``div`` with status
  ``generated``. Tolerated: an empty narrative of these three knowledge-artifact types.
* Reference targets the definitions do not allow: ``DeviceMetric-example``
  (``parent`` is a DeviceDefinition, not a Device), ``DeviceUseStatement-example``
  (``reasonReference`` a Procedure), ``MedicationRequest-medrx0301``
  (``dispenseRequest.performer`` a Practitioner, not an Organization) and
  ``Observation-clinical-gender`` (``performer`` an Encounter). Tolerated: that target
  type at that element only.
"""

from __future__ import annotations

#: resource types whose empty narrative (txt-2) is tolerated
EMPTY_NARRATIVE = frozenset({"ActivityDefinition", "EventDefinition", "Questionnaire"})
#: (element path, target type) of tolerated reference targets
TARGETS = frozenset({
    ("DeviceMetric.parent", "DeviceDefinition"),
    ("DeviceUseStatement.reasonReference", "Procedure"),
    ("MedicationRequest.dispenseRequest.performer", "Practitioner"),
    ("Observation.performer", "Encounter"),
})
