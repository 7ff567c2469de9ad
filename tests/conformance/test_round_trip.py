"""Every official R4 example and every US Core bundle resource is stored and read back.

Create (or PUT with its id), then read: the same content apart from ``meta.versionId``,
``meta.lastUpdated`` (and, for create, the server-assigned ``id``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.data import FHIR_R4_EXAMPLE_COUNT, fhir_r4_examples, us_core_bundles

EXAMPLES = fhir_r4_examples()
BUNDLES = us_core_bundles()
HEADERS = {"Content-Type": "application/fhir+json"}
#: a read of the resource, not of a Binary's raw content
READ = {"Accept": "application/fhir+json"}


def _moved(client: httpx.Client, sent: Any, stored: Any) -> Any:
    """``stored`` with every attachment whose data the server moved to object storage
    put back as sent, once its ``url`` serves that data with the ``size`` and ``hash``
    (SHA-1) Attachment defines."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        if "data" in sent and "data" not in stored and "url" in stored:
            data = base64.b64decode(sent["data"])
            assert stored["size"] == len(data)
            assert stored["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
            content = client.get(stored["url"], headers={"Accept": "*/*"})
            assert content.status_code == 200
            served = content.content
            if content.headers["content-type"].startswith("application/fhir+json"):
                served = base64.b64decode(content.json()["data"])  # a Bundle entry's
            assert served == data
            return sent
        return {k: _moved(client, sent.get(k), v) for k, v in stored.items()}
    if isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        return [_moved(client, a, b) for a, b in zip(sent, stored, strict=True)]
    return stored


def _comparable(resource: dict[str, Any], keep_id: bool) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if keep_id or k != "id"}
    meta = {k: v for k, v in out.pop("meta", {}).items()
            if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    return out


def _exact(raw: bytes | str) -> Any:
    """JSON with numbers as Decimals: jsonb keeps every digit but may drop the exponent."""
    return json.loads(raw, parse_float=Decimal, parse_int=Decimal)


def test_examples_are_present() -> None:
    assert len(EXAMPLES) == FHIR_R4_EXAMPLE_COUNT
    assert len(BUNDLES) == 6


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_official_example_round_trips(client: httpx.Client, path: Path) -> None:
    raw = path.read_bytes()
    example = _exact(raw)
    rtype = example["resourceType"]
    if rtype == "Binary" and "securityContext" in example and \
            "authorization" in client.headers:
        pytest.skip("with a token, a Binary's securityContext must name a resource the "
                    "caller may read, and the example's (DocumentReference/example) is "
                    "not stored")
    created = client.post(f"/{rtype}", content=raw, headers=HEADERS)
    assert created.status_code == 201, created.text
    new_id = created.json()["id"]
    read = client.get(f"/{rtype}/{new_id}", headers=READ)
    assert read.status_code == 200
    stored = _moved(client, example, _exact(read.content))
    assert _comparable(stored, keep_id=False) == _comparable(example, keep_id=False)


def _bundle_resources() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in BUNDLES:
        for index, entry in enumerate(orjson.loads(path.read_bytes())["entry"]):
            out.append((f"{path.stem}[{index}]", entry["resource"]))
    return out


@pytest.mark.parametrize(("label", "resource"), _bundle_resources(), ids=lambda v: str(v)[:60]
                         if isinstance(v, str) else "")
def test_us_core_resource_round_trips(client: httpx.Client, label: str,
                                      resource: dict[str, Any]) -> None:
    rtype = resource["resourceType"]
    if "id" not in resource:
        created = client.post(f"/{rtype}", content=orjson.dumps(resource), headers=HEADERS)
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        keep_id = False
    else:
        rid = resource["id"]
        stored = client.put(f"/{rtype}/{rid}", content=orjson.dumps(resource), headers=HEADERS)
        assert stored.status_code in (200, 201), stored.text
        keep_id = True
    read = client.get(f"/{rtype}/{rid}")
    assert read.status_code == 200
    assert _comparable(read.json(), keep_id) == _comparable(resource, keep_id)
