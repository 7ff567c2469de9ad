"""The test data shipped in the repository: one access point for tests and benchmarks.

See ``tests/data/README.md`` for where each folder came from and its licence. Use these
constants and helpers instead of building paths by hand, so that the suite (and
``bench/``) reads nothing from outside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent

#: The 709 official FHIR R4 (4.0.1) example resources, one ``Type-id.json`` a file (CC0).
FHIR_R4_EXAMPLES = DATA / "fhir-r4-examples"
#: Transaction Bundles of US Core patients (Inferno reference server data, Apache-2.0).
US_CORE_BUNDLES = DATA / "us-core-bundles"
#: JSON schemas of the CloudNativePG resources the Helm chart renders (Apache-2.0).
CLOUDNATIVE_PG = DATA / "cloudnative-pg"
#: A Patient profile written for the tests (``$validate?profile=``, supportedProfile).
TEST_PATIENT_PROFILE = DATA / "profiles" / "StructureDefinition-test-patient.json"
#: six US Core 5.0.1 StructureDefinitions with snapshots (a package dropped in a folder)
US_CORE_PROFILES = DATA / "profiles-us-core"

#: How many official examples there are; the folder must hold all of them.
FHIR_R4_EXAMPLE_COUNT = 709


def _json_files(folder: Path, pattern: str) -> list[Path]:
    files = sorted(folder.glob(pattern))
    if not files:  # never let a parametrized test silently collect nothing
        raise FileNotFoundError(f"no {pattern} in {folder}: the test data is missing")
    return files


def fhir_r4_examples() -> list[Path]:
    """Every official example file, sorted by name."""
    return _json_files(FHIR_R4_EXAMPLES, "*.json")


def fhir_r4_example(name: str) -> Path:
    """One official example by file name, e.g. ``"Patient-example.json"``."""
    path = FHIR_R4_EXAMPLES / name
    if not path.is_file():
        raise FileNotFoundError(f"no official example {name} in {FHIR_R4_EXAMPLES}")
    return path


def us_core_bundles(pattern: str = "*.json") -> list[Path]:
    """The US Core Bundles (all, or those whose file name matches ``pattern``), sorted."""
    return _json_files(US_CORE_BUNDLES, pattern)


def us_core_bundle(name: str) -> Path:
    """One US Core Bundle by file name, e.g. ``"uscore_bundle_patient_85.json"``."""
    path = US_CORE_BUNDLES / name
    if not path.is_file():
        raise FileNotFoundError(f"no US Core bundle {name} in {US_CORE_BUNDLES}")
    return path


def cloudnative_pg_schema(kind: str) -> dict[str, Any]:
    """The JSON schema of a ``postgresql.cnpg.io/v1`` kind, e.g. ``"Cluster"``."""
    path = CLOUDNATIVE_PG / f"{kind.lower()}_v1.json"
    if not path.is_file():
        raise FileNotFoundError(f"no CloudNativePG schema for {kind} in {CLOUDNATIVE_PG}")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema
