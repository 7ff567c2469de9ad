"""Resources that appear more than once in one run: only the last copy is written.

Extracts repeat shared resources (the SMART sample data has the same Organization and
Practitioner ids in many files, with different content). Writing every copy makes a new
version per copy and per run, and the content that stays depends on which worker came
last. Before any work is sent, :func:`scan` reads the inputs once, in the order they are
imported (phase, then name), and finds for every ``(type, id)`` its last copy; every
earlier copy is *superseded*: left out by the worker and counted as such in the summary.
A second run then finds every resource unchanged.

Copies are positions in a file: the entry index in a Bundle (0 for a single resource),
the line number in NDJSON. Within one batch or transaction Bundle nothing is left out
(a transaction that writes a resource twice is an error, as through the API).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_server.importer.files import InputFile
from fhir_server.importer.prepare import entry_key, upsert_key

Key = tuple[str, str]


@dataclass
class Duplicates:
    """What :func:`scan` found."""

    #: per file, the positions of its superseded copies
    superseded: dict[Path, frozenset[int]] = field(default_factory=dict)
    #: superseded copies, and distinct resources that have some
    copies: int = 0
    resources: int = 0

    def of(self, path: Path | str) -> frozenset[int]:
        """The superseded positions of one file."""
        return self.superseded.get(Path(path), frozenset())


def _ndjson_lines(file: InputFile) -> Iterator[tuple[int, bytes]]:
    opener: Any = gzip.open if file.gzipped else open
    with opener(file.path, "rb") as stream:
        yield from enumerate(stream, 1)


def _keys(file: InputFile) -> Iterator[tuple[Key, int, bool]]:
    """``(key, position, in a batch/transaction)`` of every copy with a known id."""
    if file.kind == "ndjson":
        for number, line in _ndjson_lines(file):
            if not line.strip():
                continue
            try:
                key = upsert_key(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
            if key is not None:
                yield key, number, False
        return
    value = orjson.loads(file.path.read_bytes())
    if not isinstance(value, dict):
        return
    if value.get("resourceType") != "Bundle":
        key = upsert_key(value)
        if key is not None:
            yield key, 0, False
        return
    entries = value.get("entry")
    if not isinstance(entries, list):
        return
    bundle = value.get("type") in ("transaction", "batch")
    for index, entry in enumerate(entries):
        if bundle:
            key = entry_key(entry)
        elif isinstance(entry, dict):
            full_url = entry.get("fullUrl")
            key = upsert_key(entry.get("resource"),
                             full_url if isinstance(full_url, str) else None)
        else:
            key = None
        if key is not None:
            yield key, index, bundle


def scan(inputs: list[InputFile]) -> Duplicates:
    """The superseded copies of ``inputs``, taken in import order (phase, then as given).

    A file that cannot be read or parsed is skipped here (its worker reports it).
    """
    order = sorted(range(len(inputs)), key=lambda i: inputs[i].phase)
    copies: list[tuple[Key, int, int, bool]] = []
    last: dict[Key, tuple[int, int]] = {}
    for rank, number in enumerate(order):
        try:
            for key, position, bundle in _keys(inputs[number]):
                copies.append((key, rank, position, bundle))
                if last.get(key, (-1, -1)) < (rank, position):
                    last[key] = (rank, position)
        except (OSError, EOFError, ValueError):
            continue
    found = Duplicates()
    positions: dict[int, set[int]] = {}
    keys: set[Key] = set()
    for key, rank, position, bundle in copies:
        final = last[key]
        later = final[0] > rank if bundle else final > (rank, position)
        if later:
            positions.setdefault(rank, set()).add(position)
            keys.add(key)
            found.copies += 1
    found.resources = len(keys)
    found.superseded = {inputs[order[rank]].path: frozenset(p) for rank, p in positions.items()}
    return found
