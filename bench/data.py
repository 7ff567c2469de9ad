"""Deterministic test data for the search benchmark, and a fast loader that PUTs it.

The data set is an ordered list of resources, written once to a cache folder
(``bench/.cache/search-data/``) and read back on later runs:

1. the six US Core example bundles of ``tests/data/us-core-bundles/`` (Synthea
   patients 355 and 85, the Inferno client-test patient, two tiny patients, and a bundle
   holding a StructureDefinition and a SearchParameter), in file-name order;
2. carebundle patients (``carebundle.generate_bundle``), one bundle per patient index
   ``0, 1, 2, ...``: a Patient, their Practitioner, one Encounter, Conditions, lab and
   vital-sign Observations, AllergyIntolerances, MedicationRequests and
   DiagnosticReports (about 45 resources a patient). The clinical profile (healthy,
   hypertension, type 2 diabetes, CKD stage 3, anaemia) and the visit date are drawn per
   index from a seeded generator: visit dates spread over the ten years 2016-2025 (the
   library puts every visit on its ``reference_date``), so date searches are selective.

``urn:uuid:`` references are rewritten to ``Type/id`` (every entry has an id), so each
resource can be sent on its own with ``PUT /fhir/{type}/{id}``. A *unit* (a bundle or a
patient) is never split, so a prefix of the list that ends on a unit boundary is
self-contained: the 10k stage of the benchmark loads such a prefix, the 100k stage the
rest. The same seed always gives byte-identical files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.data import US_CORE_BUNDLES

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "search-data"
US_CORE = US_CORE_BUNDLES
#: Bumped whenever the generation below changes, so old caches are not reused.
FORMAT_VERSION = 1

#: Clinical profiles and their weights (carebundle's default cohort mix, plus anaemia,
#: which carebundle's own cohort leaves out).
PROFILE_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("healthy", 0.45),
    ("hypertension", 0.27),
    ("type2_diabetes", 0.15),
    ("ckd_stage3", 0.08),
    ("anaemia", 0.05),
)
FIRST_VISIT = date(2016, 1, 1)
VISIT_SPAN_DAYS = 3653


def log(message: str) -> None:
    """Progress on stderr, timestamped."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the data set -----------------------------------------------------------------------


@dataclass
class Manifest:
    """What a cache folder holds: counts, unit boundaries, the generator's version."""

    seed: int
    target: int
    carebundle_version: str
    format_version: int
    total: int
    patients: int
    #: cumulative resource count after each unit (bundle or patient), in order
    boundaries: list[int]
    #: resources per type in the whole file
    by_type: dict[str, int]
    sha256: str
    #: carebundle patient index -> (profile, visit date), for choosing query values
    patient_profiles: list[tuple[str, str]] = field(default_factory=list)

    def prefix(self, at_least: int) -> int:
        """The smallest unit boundary holding ``at_least`` resources (or everything)."""
        for boundary in self.boundaries:
            if boundary >= at_least:
                return boundary
        return self.total


def _rewrite(value: Any, urls: dict[str, str]) -> Any:
    """``value`` with every ``reference`` found in ``urls`` replaced by ``Type/id``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in urls:
                out[key] = urls[item]
            else:
                out[key] = _rewrite(item, urls)
        return out
    if isinstance(value, list):
        return [_rewrite(item, urls) for item in value]
    return value


def bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of a transaction bundle, with ``urn:uuid:`` references resolved.

    Each entry's id comes from ``request.url`` (``Type/id`` of a PUT), else from the
    resource itself, else from a ``urn:uuid:`` fullUrl (carebundle's resources carry no
    id); an entry with none of them is an error.
    """
    urls: dict[str, str] = {}
    resources: list[dict[str, Any]] = []
    for entry in bundle.get("entry", []):
        resource = dict(entry["resource"])
        rtype = resource["resourceType"]
        url = (entry.get("request") or {}).get("url", "")
        parts = url.split("?")[0].split("/")
        if len(parts) == 2 and parts[0] == rtype and parts[1]:
            resource["id"] = parts[1]
        full_url = entry.get("fullUrl") or ""
        if not resource.get("id") and full_url.startswith("urn:uuid:"):
            resource["id"] = full_url.removeprefix("urn:uuid:")
        if not resource.get("id"):
            raise ValueError(f"a {rtype} entry without an id in a bundle")
        if entry.get("fullUrl"):
            urls[entry["fullUrl"]] = f"{rtype}/{resource['id']}"
        resources.append(resource)
    return [_rewrite(r, urls) for r in resources]


def us_core_units(folder: Path = US_CORE) -> list[list[dict[str, Any]]]:
    """The resources of each US Core bundle, one list per file, in file-name order."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no US Core bundles in {folder}")
    return [bundle_resources(json.loads(f.read_bytes())) for f in files]


def _choose(seed: int, index: int) -> tuple[str, date]:
    """The clinical profile and visit date of carebundle patient ``index``."""
    import numpy as np

    rng = np.random.default_rng([seed, index, 0x5EA7C4])
    pick = float(rng.random())
    cumulative = 0.0
    profile = PROFILE_WEIGHTS[-1][0]
    total = sum(w for _, w in PROFILE_WEIGHTS)
    for name, weight in PROFILE_WEIGHTS:
        cumulative += weight / total
        if pick < cumulative:
            profile = name
            break
    visit = FIRST_VISIT + timedelta(days=int(rng.integers(0, VISIT_SPAN_DAYS)))
    return profile, visit


def carebundle_patient(seed: int, index: int) -> tuple[str, date, list[dict[str, Any]]]:
    """Profile, visit date and resources of carebundle patient ``index``."""
    import carebundle

    profile, visit = _choose(seed, index)
    bundle = carebundle.generate_bundle(profile=profile, seed=seed, sex="FM"[index % 2],
                                        index=index, reference_date=visit)
    return profile, visit, bundle_resources(json.loads(carebundle.to_json(bundle)))


def _dumps(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False,
                      sort_keys=False).encode()


def cache_dir(seed: int, target: int, base: Path = CACHE) -> Path:
    """The cache folder of one (seed, target) data set."""
    return base / f"seed{seed}-n{target}-v{FORMAT_VERSION}"


def build(seed: int, target: int, base: Path = CACHE, force: bool = False) -> Manifest:
    """Generate (or reuse) the data set of at least ``target`` resources; its manifest.

    The data goes to ``resources.ndjson`` (one resource a line, compact JSON) in the
    cache folder, written to a temporary name first so an interrupted run leaves no
    half-written cache behind.
    """
    import carebundle

    folder = cache_dir(seed, target, base)
    manifest_path = folder / "manifest.json"
    if manifest_path.exists() and not force:
        manifest = Manifest(**json.loads(manifest_path.read_text()))
        if manifest.carebundle_version == carebundle.__version__:
            log(f"data: reusing {folder} ({manifest.total:,} resources)")
            return manifest
        log("data: the cache was made by another carebundle version, regenerating")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "resources.ndjson.tmp"
    digest = hashlib.sha256()
    by_type: Counter[str] = Counter()
    boundaries: list[int] = []
    profiles: list[tuple[str, str]] = []
    total = 0
    started = time.monotonic()

    def write_unit(out: Any, resources: Sequence[dict[str, Any]]) -> None:
        nonlocal total
        for resource in resources:
            line = _dumps(resource) + b"\n"
            out.write(line)
            digest.update(line)
            by_type[resource["resourceType"]] += 1
        total += len(resources)
        boundaries.append(total)

    with tmp.open("wb") as out:
        for unit in us_core_units():
            write_unit(out, unit)
        index = 0
        while total < target:
            profile, visit, resources = carebundle_patient(seed, index)
            profiles.append((profile, visit.isoformat()))
            write_unit(out, resources)
            index += 1
            if index % 500 == 0:
                log(f"data: {index:,} patients, {total:,} resources "
                    f"({time.monotonic() - started:.0f} s)")
    tmp.replace(folder / "resources.ndjson")
    manifest = Manifest(seed=seed, target=target, carebundle_version=carebundle.__version__,
                        format_version=FORMAT_VERSION, total=total, patients=index,
                        boundaries=boundaries, by_type=dict(sorted(by_type.items())),
                        sha256=digest.hexdigest(), patient_profiles=profiles)
    manifest_path.write_text(json.dumps(manifest.__dict__, indent=1))
    log(f"data: {total:,} resources ({index:,} carebundle patients) written to {folder} "
        f"in {time.monotonic() - started:.0f} s")
    return manifest


def read(seed: int, target: int, start: int = 0, stop: int | None = None,
         base: Path = CACHE) -> Iterator[bytes]:
    """Lines ``start:stop`` of a built data set (compact JSON, no newline)."""
    path = cache_dir(seed, target, base) / "resources.ndjson"
    with path.open("rb") as f:
        for n, line in enumerate(f):
            if stop is not None and n >= stop:
                break
            if n >= start:
                yield line.rstrip(b"\n")


def count_types(lines: Iterable[bytes]) -> dict[str, int]:
    """Resources per type among ``lines``."""
    counts: Counter[str] = Counter(json.loads(line)["resourceType"] for line in lines)
    return dict(sorted(counts.items()))


# --- the loader -------------------------------------------------------------------------


@dataclass
class LoadStats:
    """How a load went."""

    sent: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    #: type -> number of refusals (4xx), and the first refusal's text per type
    refused: dict[str, int] = field(default_factory=dict)
    first_refusal: dict[str, str] = field(default_factory=dict)
    retries: int = 0

    @property
    def rate(self) -> float:
        """Resources per second."""
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def stored(self) -> int:
        """Resources the server accepted (200 or 201)."""
        return self.statuses.get("200", 0) + self.statuses.get("201", 0)


class LoadError(RuntimeError):
    """Loading cannot go on (server errors, too many refusals)."""


def _head(raw: bytes) -> tuple[int, int]:
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return status, int(value)
    raise LoadError(f"no Content-Length in the response: {lines[0]}")


async def _put_loop(host: str, port: int, netloc: str, queue: asyncio.Queue[bytes | None],
                    stats: LoadStats, request_timeout: float) -> None:
    """One keep-alive connection sending ``PUT /fhir/{type}/{id}`` from the queue."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            body = await queue.get()
            if body is None:
                return
            head = json.loads(body)
            path = f"/fhir/{head['resourceType']}/{urllib.parse.quote(head['id'])}"
            request = (f"PUT {path} HTTP/1.1\r\nHost: {netloc}\r\n"
                       "Content-Type: application/fhir+json\r\nPrefer: return=minimal\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            for attempt in range(4):
                writer.write(request)
                async with asyncio.timeout(request_timeout):
                    status, length = _head(await reader.readuntil(b"\r\n\r\n"))
                    answer = await reader.readexactly(length)
                if status < 500 or attempt == 3:
                    break
                stats.retries += 1
                await asyncio.sleep(0.5 * (attempt + 1))
            stats.statuses[str(status)] = stats.statuses.get(str(status), 0) + 1
            stats.sent += 1
            if status >= 500:
                raise LoadError(f"PUT {path}: HTTP {status}: {answer[:500]!r}")
            if status >= 400:
                rtype = head["resourceType"]
                stats.refused[rtype] = stats.refused.get(rtype, 0) + 1
                stats.first_refusal.setdefault(rtype, answer[:800].decode(errors="replace"))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _load(base_url: str, lines: Iterable[bytes], concurrency: int,
                request_timeout: float, progress_every: int) -> LoadStats:
    url = urllib.parse.urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=concurrency * 4)
    stats = LoadStats()
    started = time.perf_counter()
    workers = [asyncio.create_task(_put_loop(host, port, url.netloc, queue, stats,
                                               request_timeout))
               for _ in range(concurrency)]
    try:
        next_report = progress_every
        for line in lines:
            # A worker that failed would leave the queue full: surface its error.
            for task in workers:
                if task.done():
                    task.result()
                    raise LoadError("a loader connection ended early")
            await queue.put(line)
            if stats.sent >= next_report:
                elapsed = time.perf_counter() - started
                log(f"load: {stats.sent:,} sent, {stats.sent / elapsed:.0f}/s")
                next_report += progress_every
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    stats.seconds = time.perf_counter() - started
    return stats


def load(base_url: str, lines: Iterable[bytes], concurrency: int = 16,
         timeout: float = 60.0, progress_every: int = 10_000) -> LoadStats:
    """PUT every resource of ``lines`` on ``concurrency`` keep-alive connections.

    A minimal asyncio HTTP/1.1 client (like ``bench.common``'s POST loader): a 4xx
    answer is counted per type and loading goes on; a 5xx is retried three times, then
    loading stops.
    """
    try:
        return asyncio.run(_load(base_url, lines, concurrency, timeout, progress_every))
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        raise LoadError(f"loading failed: {type(exc).__name__}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.data``: build the cache and print the counts per type."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--target", type=int, default=100_000,
                        help="resources to generate, at least (default 100000)")
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = parser.parse_args(argv)
    manifest = build(args.seed, args.target, force=args.force)
    print(json.dumps({"total": manifest.total, "patients": manifest.patients,
                      "by_type": manifest.by_type, "sha256": manifest.sha256}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
