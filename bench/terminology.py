"""Terminology cost, in this process (no server, no database): what a first ``:in``
search pays now (expanding the one value set it names) against what it paid before the
expander was unified (baseline: expanding every shipped value set on first use, as
``search/valuesets.py`` did), and warm ``$expand`` / ``:below`` costs against a plain
token parse.

    .venv/bin/python -m bench.terminology       # a few seconds

Results: a table on stdout, JSON in ``bench/results/terminology.json``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from fhir_server.paths import data_dir
from fhir_server.search.base import ParseContext
from fhir_server.search.token import TOKEN
from fhir_server.terminology import Expander, TerminologyService, load_catalog
from fhir_server.terminology.operations import ExpandQuery

VS = "http://hl7.org/fhir/ValueSet/"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
RESULT = Path(__file__).resolve().parent / "results" / "terminology.json"


def _us(work: Callable[[], Any], rounds: int = 2000) -> float:
    """Median microseconds of ``work``, over ``rounds`` calls."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def main() -> None:
    started = time.perf_counter()
    catalog = load_catalog(data_dir("profiles"))
    load_ms = (time.perf_counter() - started) * 1e3
    urls = list(catalog.value_sets)

    def first_in_now() -> None:
        Expander(catalog).members(VS + "condition-clinical")

    def first_in_before() -> None:  # the old first use: every value set expanded
        expander = Expander(catalog)
        for url in urls:
            expander.members(url)

    now = _us(first_in_now, 50)
    before = _us(first_in_before, 5)
    service = TerminologyService(catalog)
    gender = service.value_set(VS + "administrative-gender")
    expand_us = _us(lambda: service.expand(gender, ExpandQuery()))
    ctx = ParseContext(expand_valueset=service.members, subsumption=service.related)
    plain = _us(lambda: TOKEN.parse(1, None, f"{CLINICAL}|active", ctx), 20000)
    below = _us(lambda: TOKEN.parse(1, "below", f"{CLINICAL}|active", ctx), 20000)
    in_us = _us(lambda: TOKEN.parse(1, "in", VS + "condition-clinical", ctx), 20000)
    result = {
        "catalog_load_ms": round(load_ms, 1),
        "first_in_us": round(now, 1), "first_in_before_us": round(before, 1),
        "first_in_ratio": round(before / now, 1),
        "expand_gender_us": round(expand_us, 1),
        "token_parse_us": round(plain, 2), "token_below_us": round(below, 2),
        "token_in_us": round(in_us, 2), "below_ratio": round(below / plain, 2),
        "in_ratio": round(in_us / plain, 2),
    }
    for key, value in result.items():
        print(f"{key:24} {value}")
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
