"""Finding the files to import, estimating their size, cutting NDJSON into chunks.

Files are ``.json`` (a Bundle or a single resource), ``.ndjson`` and ``.ndjson.gz`` (one
resource a line). Directories are walked recursively, in name order; other files are
skipped. Synthea's ``hospitalInformation*.json`` and then ``practitionerInformation*.json``
are imported first, each phase finished before the next starts: the others refer to
their resources by conditional references (``Organization?identifier=...``), which
resolve only once those are stored.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Lines per NDJSON work item: big enough to amortize a round trip, small enough to
#: spread over workers and keep a failed chunk's retry cheap.
CHUNK_LINES = 500
#: File name prefixes of Synthea's shared-resource Bundles: phases 0 and 1.
FIRST_PHASE_PREFIXES = ("hospitalInformation", "practitionerInformation")
#: The phase of every other file.
LAST_PHASE = len(FIRST_PHASE_PREFIXES)


@dataclass(frozen=True)
class InputFile:
    """One file to import."""

    path: Path
    kind: str  # "json" or "ndjson"
    phase: int  # 0 and 1: Synthea's shared resources, in that order; 2: the rest

    @property
    def gzipped(self) -> bool:
        """Whether the file is gzip-compressed."""
        return self.path.name.endswith(".gz")


@dataclass(frozen=True)
class FileItem:
    """Work: one ``.json`` file (a Bundle or a resource)."""

    item_id: int
    path: str
    estimate: int
    retry: bool = False
    #: entries (0 for a single resource) superseded by a later copy (``duplicates.py``)
    superseded: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ChunkItem:
    """Work: consecutive NDJSON lines of one file, with their 1-based line numbers."""

    item_id: int
    path: str
    lines: list[tuple[int, bytes]] = field(default_factory=list)
    retry: bool = False
    #: line numbers superseded by a later copy (``duplicates.py``)
    superseded: frozenset[int] = frozenset()

    @property
    def estimate(self) -> int:
        """Resources in the chunk (blank lines included; they are skipped later)."""
        return len(self.lines)


WorkItem = FileItem | ChunkItem


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".ndjson", ".ndjson.gz")):
        return "ndjson"
    if name.endswith(".json"):
        return "json"
    return None


def _phase(path: Path) -> int:
    for phase, prefix in enumerate(FIRST_PHASE_PREFIXES):
        if path.name.startswith(prefix):
            return phase
    return LAST_PHASE


def discover(paths: Iterable[str | Path]) -> tuple[list[InputFile], list[tuple[str, str]]]:
    """The importable files under ``paths`` (sorted per argument), and (path, problem)s.

    A path given explicitly with an unknown extension is a problem; inside directories
    such files are skipped silently (Synthea writes CSVs and other things beside).
    """
    found: list[InputFile] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p))
        elif path.is_file():
            if _kind(path) is None:
                problems.append((str(path), "not a .json, .ndjson or .ndjson.gz file"))
                continue
            candidates = [path]
        else:
            problems.append((str(path), "no such file or directory"))
            continue
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            kind = _kind(candidate)
            assert kind is not None
            found.append(InputFile(candidate, kind, _phase(candidate)))
    return found, problems


def _open(file: InputFile) -> Iterator[bytes]:
    """The file's bytes in blocks (decompressed when gzipped)."""
    opener = gzip.open if file.gzipped else open
    with opener(file.path, "rb") as stream:
        while block := stream.read(1 << 20):
            yield block


def estimate(file: InputFile) -> int:
    """About how many resources a file holds, read cheaply (C-speed byte counts).

    NDJSON: its lines. JSON: the ``"resourceType"`` keys less the Bundle's own (contained
    resources make it an overestimate; the progress total is corrected as files finish).
    """
    try:
        if file.kind == "ndjson":
            count, last = 0, b"\n"
            for block in _open(file):
                count += block.count(b"\n")
                last = block[-1:]
            return count + (last != b"\n")
        data = file.path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return 1  # unreadable: reported by the worker that tries it
    keys = data.count(b'"resourceType"')
    return max(1, keys - 1)


def ndjson_chunks(file: InputFile, first_id: int,
                  chunk_lines: int = CHUNK_LINES) -> Iterator[ChunkItem]:
    """The file's lines as work items; raises OSError/EOFError when unreadable."""
    item_id = first_id
    lines: list[tuple[int, bytes]] = []
    number = 0
    tail = b""
    for block in _open(file):
        parts = (tail + block).split(b"\n")
        tail = parts.pop()
        for part in parts:
            number += 1
            lines.append((number, part))
            if len(lines) >= chunk_lines:
                yield ChunkItem(item_id, str(file.path), lines)
                item_id += 1
                lines = []
    if tail:
        number += 1
        lines.append((number, tail))
    if lines:
        yield ChunkItem(item_id, str(file.path), lines)


def cpu_count() -> int:
    """CPUs this process may use (the default number of workers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
