"""The CapabilityStatement's parts that need no server: mode, terse, reverse includes,
supported profiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from fhir_server.api.capabilities import _mode, _reverse_references, build_capability, terse
from fhir_server.api.messages import FhirRequest
from fhir_server.api.routes import ROUTES
from fhir_server.errors import BadRequest
from fhir_server.paths import data_dir
from fhir_server.search.registry import SearchParam


@dataclass(frozen=True)
class _Profile:
    type: str


class _Registry:
    """Two types, Observation.subject pointing at Patient and Group."""

    def __init__(self) -> None:
        ref = SearchParam("subject", "reference", "Observation", "http://x/subject",
                          "Observation.subject", targets=("Patient", "Group"),
                          extract=lambda r: [])
        org = SearchParam("organization", "reference", "Patient", "http://x/org",
                          "Patient.managingOrganization", targets=("Organization",),
                          extract=lambda r: [], status="draft")
        self._by = {"Observation": {"subject": ref}, "Patient": {"organization": org}}

    def params(self, rtype: str) -> dict[str, SearchParam]:
        return self._by.get(rtype, {})

    def get(self, rtype: str, code: str) -> SearchParam | None:
        return self._by.get(rtype, {}).get(code)


@pytest.mark.parametrize(("query", "mode"), [("", "full"), ("mode=terse", "terse"),
                                             ("mode=normative", "normative")])
def test_mode(query: str, mode: str) -> None:
    assert _mode(FhirRequest("GET", "metadata", query)) == mode


@pytest.mark.parametrize("query", ["mode=terminology", "mode=x", "mode=full&mode=terse"])
def test_a_bad_mode_is_400(query: str) -> None:
    with pytest.raises(BadRequest):
        _mode(FhirRequest("GET", "metadata", query))


def _statement(profiles: dict[str, Any] | None = None) -> dict[str, Any]:
    return build_capability(data_dir("capability"), ["Observation", "Patient"],
                            "http://h/fhir", _Registry(), ROUTES,  # type: ignore[arg-type]
                            profiles=profiles)


def test_reverse_includes_and_supported_profiles() -> None:
    assert _reverse_references(_Registry(), ["Observation", "Patient"]) == {  # type: ignore[arg-type]
        "Patient": ["Observation:subject"], "Group": ["Observation:subject"]}
    statement = _statement({"http://p/b": _Profile("Patient"), "http://p/a": _Profile("Patient")})
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert by_type["Patient"]["searchRevInclude"] == ["*", "Observation:subject"]
    assert by_type["Patient"]["searchInclude"] == ["*"]  # a draft parameter is left out
    assert by_type["Observation"]["searchInclude"] == ["*", "Observation:subject"]
    assert by_type["Patient"]["supportedProfile"] == ["http://p/a", "http://p/b"]
    assert "supportedProfile" not in by_type["Observation"]


def test_terse_keeps_the_required_elements() -> None:
    full = _statement()
    short = terse(full)
    assert short["rest"] == [{"mode": "server", "resource": [{"type": "Observation"},
                                                             {"type": "Patient"}]}]
    assert short["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert set(short) == {"resourceType", "id", "url", "name", "status", "date", "kind",
                          "software", "implementation", "fhirVersion", "format", "rest",
                          "meta"}
    assert "meta" not in full  # the cached statement is left whole
