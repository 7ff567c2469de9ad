"""Typed vs untyped chain on a database without statistics (issue 8).

``Observation?subject.name=X`` may reach Patient, Group, Device or Location; the typed
``Observation?subject:Patient.name=X`` only Patient. This script loads Synthea-like
data (Patients with Synthea's numbered names, Practitioners, Organizations, Encounters,
Observations) into a fresh scratch database whose tables have autovacuum disabled, so
no statistics exist (``pg_stat_user_tables.last_autoanalyze`` stays NULL and nothing runs
``ANALYZE``), then times both searches' page statement with ``EXPLAIN ANALYZE`` (as the
server compiles it) and reports the ratio untyped/typed.

    .venv/bin/python -m bench.untyped_chain --patients 2000
    .venv/bin/python -m bench.untyped_chain --source /tmp/old-tree   # an older compiler

``--source`` puts another source tree's ``fhir_server`` first (the data and the
database are built the same way), to compare before and after a change. The scratch
database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SYLLABLES = ("sau", "er", "ko", "ch", "bash", "ri", "an", "ze", "mo", "lin", "ta", "gus")


def name(rng: random.Random) -> str:
    """A Synthea-like name: syllables and a number (``Sauer652``)."""
    text = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
    return f"{text.capitalize()}{rng.randint(100, 999)}"


def resources(patients: int, seed: int) -> Iterator[dict[str, Any]]:
    """Organizations, Practitioners, and per patient a Patient, Encounters and
    Observations referring to them; one Patient is always ``Sauer652``."""
    rng = random.Random(seed)
    orgs = [f"org{i}" for i in range(max(1, patients // 50))]
    pracs = [f"prac{i}" for i in range(max(1, patients // 10))]
    for oid in orgs:
        yield {"resourceType": "Organization", "id": oid, "name": f"{name(rng)} Hospital"}
    for pid in pracs:
        yield {"resourceType": "Practitioner", "id": pid,
               "name": [{"family": name(rng), "given": [name(rng)]}]}
    for i in range(patients):
        pid = f"pat{i}"
        family = "Sauer652" if i == patients // 2 else name(rng)
        yield {"resourceType": "Patient", "id": pid, "gender": rng.choice(("male", "female")),
               "birthDate": f"{rng.randint(1930, 2020)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
               "name": [{"use": "official", "family": family, "given": [name(rng)],
                         "prefix": [rng.choice(("Mr.", "Mrs.", "Ms."))]}],
               "managingOrganization": {"reference": f"Organization/{rng.choice(orgs)}"}}
        for e in range(2):
            eid = f"enc{i}-{e}"
            yield {"resourceType": "Encounter", "id": eid, "status": "finished",
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                             "code": "AMB"},
                   "subject": {"reference": f"Patient/{pid}"},
                   "participant": [{"individual": {
                       "reference": f"Practitioner/{rng.choice(pracs)}"}}],
                   "serviceProvider": {"reference": f"Organization/{rng.choice(orgs)}"}}
            for o in range(5):
                yield {"resourceType": "Observation", "id": f"obs{i}-{e}-{o}",
                       "status": "final",
                       "code": {"coding": [{"system": "http://loinc.org",
                                            "code": rng.choice(("8302-2", "29463-7",
                                                                "8867-4", "2339-0"))}]},
                       "subject": {"reference": f"Patient/{pid}"},
                       "encounter": {"reference": f"Encounter/{eid}"},
                       "performer": [{"reference": f"Practitioner/{rng.choice(pracs)}"}],
                       "effectiveDateTime": f"20{rng.randint(10, 24)}-0{rng.randint(1, 9)}-10",
                       "valueQuantity": {"value": rng.randint(1, 200), "unit": "kg"}}


def scratch(admin: str) -> tuple[str, str]:
    """A fresh database on ``admin``'s server: (name, URL)."""
    db = f"bench_chain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    return db, re.sub(r"/[^/?]*(\?|$)", f"/{db}\\1", admin, count=1)


def no_autovacuum(conn: psycopg.Connection[Any]) -> list[str]:
    """Autovacuum (and so auto-analyze) off on every table; their names."""
    tables = [r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
    for table in tables:
        conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(
            sql.Identifier(table)))
    return tables


def load(url: str, patients: int, seed: int) -> int:
    """Write the resources through ``fhir_write`` with their index rows, as the API does."""
    from fhir_server.definitions import Definitions
    from fhir_server.paths import data_dir
    from fhir_server.search.fhirpath import Extractor
    from fhir_server.search.index import IndexBuilder
    from fhir_server.search.registry import Registry
    from fhir_server.storage.index_rows import dump_index

    definitions = Definitions.load()
    registry = Registry.load(data_dir("search"), definitions.resource_types,
                             Extractor(definitions))
    indexer = IndexBuilder(registry)
    statement = ("SELECT rid FROM fhir_write(%s, %s, %s::jsonb, 'PUT', NULL, %s::jsonb)")
    n = 0
    with psycopg.connect(url) as conn:
        batch: list[tuple[Any, ...]] = []
        for resource in resources(patients, seed):
            batch.append((resource["resourceType"], resource["id"], json.dumps(resource),
                          dump_index(indexer.rows(resource))))
            if len(batch) >= 500:
                conn.cursor().executemany(statement, batch)
                n += len(batch)
                batch = []
        conn.cursor().executemany(statement, batch)
        conn.commit()
        n += len(batch)
    return n


def compiled(query: str) -> tuple[sql.Composable, list[Any]]:
    """The page statement the server runs for ``Type?query`` (first page of 20)."""
    from urllib.parse import parse_qsl

    from fhir_server.definitions import Definitions
    from fhir_server.paths import data_dir
    from fhir_server.search.fhirpath import Extractor
    from fhir_server.search.parse import Parser
    from fhir_server.search.registry import Registry
    from fhir_server.storage.sql.compile import Compiler

    definitions = Definitions.load()
    registry = Registry.load(data_dir("search"), definitions.resource_types,
                             Extractor(definitions))
    rtype, _, qs = query.partition("?")
    request = Parser(registry).parse([rtype], parse_qsl(qs), strict=True)
    where = Compiler().compile(request).where
    return sql.SQL("SELECT r.rid FROM resource r WHERE {} ORDER BY r.rid LIMIT 21").format(
        where[0]), where[1]


def explain(url: str, statement: tuple[sql.Composable, list[Any]], runs: int
            ) -> tuple[float, int, str]:
    """Median planning + execution ms over ``runs``, the rows, and the last plan."""
    times: list[float] = []
    plan_text = ""
    rows = 0
    with psycopg.connect(url, autocommit=True) as conn:
        text = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(statement[0])
        for _ in range(runs):
            plan = conn.execute(text, statement[1]).fetchone()[0][0]  # type: ignore[index]
            times.append(plan["Planning Time"] + plan["Execution Time"])
            rows = plan["Plan"]["Actual Rows"]
        lines = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF) {}").format(
            statement[0]), statement[1]).fetchall()
        plan_text = "\n".join(r[0] for r in lines)
    return statistics.median(times), rows, plan_text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=400,
                        help="patients (each with 2 Encounters and 10 Observations)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--source", type=Path, help="another source tree to import first")
    parser.add_argument("--url", default=os.environ.get("DATABASE_URL", DEFAULT_URL),
                        help="an admin URL of the PostgreSQL server (a scratch DB is made)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--plans", action="store_true", help="print the plans")
    args = parser.parse_args(argv)
    if args.source is not None:
        sys.path.insert(0, str(args.source.resolve()))
    import fhir_server
    from fhir_server.storage.admin import apply_migrations

    print(f"fhir_server from {Path(fhir_server.__file__).parent}")
    db, url = scratch(args.url)
    try:
        migrations = (args.source or ROOT) / "migrations"
        apply_migrations(url, migrations)
        with psycopg.connect(url, autocommit=True) as conn:
            tables = no_autovacuum(conn)
        started = time.perf_counter()
        n = load(url, args.patients, args.seed)
        print(f"{n} resources loaded in {time.perf_counter() - started:.1f} s into {db};"
              f" autovacuum off on {len(tables)} tables")
        with psycopg.connect(url, autocommit=True) as conn:
            analyzed = conn.execute(
                "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL"
                " OR last_autoanalyze IS NOT NULL").fetchone()
            print(f"tables with statistics: {analyzed[0] if analyzed else '?'}")
        queries = {"typed": "Observation?subject:Patient.name=Sauer652",
                   "untyped": "Observation?subject.name=Sauer652"}
        results: dict[str, float] = {}
        for label, query in queries.items():
            ms, rows, plan = explain(url, compiled(query), args.runs)
            results[label] = ms
            print(f"{label:8} {query:45} {ms:9.2f} ms  ({rows} rows)")
            if args.plans:
                print(plan)
        print(f"ratio untyped/typed: {results['untyped'] / results['typed']:.2f}")
    finally:
        if not args.keep:
            with psycopg.connect(args.url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                    sql.Identifier(db)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
