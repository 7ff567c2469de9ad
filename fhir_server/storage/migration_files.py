"""Flyway-compatible migration files, without a database: names, checksums, states.

Operators also run the real ``flyway migrate`` / ``flyway info`` against the same
database, so everything observable is Flyway's: the CRC32 checksum of
``ChecksumCalculator``, versions normalised like ``MigrationVersion`` (``1_1`` -> ``1.1``,
trailing zero parts ignored when comparing), descriptions with ``_`` turned into spaces,
the states of ``flyway info``, and the advisory-lock number of
``PostgreSQLAdvisoryLockTemplate`` so that our runner and Flyway exclude each other.

Deliberately stricter than Flyway: badly named ``V*.sql`` files, repeatable (``R__``)
files and ``${placeholders}`` are refused instead of being skipped or substituted.
The database side (history table, applying files) is :mod:`fhir_server.storage.migrate`.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

HISTORY_TABLE = "flyway_schema_history"
#: Flyway's ``LOCK_MAGIC_NUM`` ("Flyway" in ASCII); the table's Java hash is added to it.
_LOCK_MAGIC = 77431708279161
_VERSION = re.compile(r"[0-9]+(?:[._][0-9]+)*", re.ASCII)
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
_LINE_BREAKS = re.compile(r"[\r\n]")

SUCCESS, PENDING, FAILED = "Success", "Pending", "Failed"
MISMATCH, FUTURE = "Checksum mismatch", "Future"
#: Flyway's names for an applied version with no file below the newest file, and for
#: a file older than the newest applied version (out of order): both are refused.
MISSING, IGNORED = "Missing", "Ignored"


@dataclass(frozen=True)
class MigrationFile:
    """One ``V<version>__<description>.sql`` file as Flyway resolves it."""

    version: str
    description: str
    script: str
    checksum: int
    path: Path


@dataclass(frozen=True)
class MigrationInfo:
    """One line of ``flyway info``: a file, an applied version, or both.

    ``state`` is ``Success``, ``Pending``, ``Failed``, ``Checksum mismatch``, ``Future``
    (applied, newer than every file), ``Missing`` (applied, no file, older than the
    newest file) or ``Ignored`` (a file older than the newest applied version).
    ``checksum`` is the recorded one once applied, else the file's.
    """

    version: str
    description: str
    script: str
    state: str
    installed_on: datetime | None
    checksum: int | None


@dataclass(frozen=True)
class Applied:
    """One versioned ``flyway_schema_history`` row."""

    version: str
    description: str
    script: str
    checksum: int | None
    installed_on: datetime | None
    success: bool


def version_key(version: str) -> tuple[int, ...]:
    """Numeric sort key of a version; ``1``, ``1.0`` and ``1_0`` are the same version."""
    parts = [int(p) for p in version.replace("_", ".").split(".")]
    while len(parts) > 1 and parts[-1] == 0:  # MigrationVersion drops trailing zeros
        parts.pop()
    return tuple(parts)


def flyway_checksum(data: bytes) -> int:
    """Flyway's checksum of a file's bytes: CRC32 of its UTF-8 lines, as a signed int.

    Flyway reads the file with ``BufferedReader.readLine`` (terminators ``\\n``, ``\\r``
    and ``\\r\\n`` dropped), strips a BOM from the first line and feeds each line's
    UTF-8 bytes to one CRC32; concatenating the lines is therefore the same as deleting
    every CR and LF. Raises ``ValueError`` on invalid UTF-8, which Flyway refuses too.
    """
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    crc = zlib.crc32(_LINE_BREAKS.sub("", text).encode("utf-8"))
    return crc - (1 << 32) if crc >= (1 << 31) else crc


def _parse_name(path: Path, root: Path) -> MigrationFile:
    """Parse and read one ``V*.sql`` file, raising ValueError when Flyway could not use it."""
    name = path.name
    stem = name[1 : -len(".sql")]
    version, sep, rest = stem.partition("__")  # Flyway splits at the first separator
    if not sep or not _VERSION.fullmatch(version):
        raise ValueError(
            f"bad migration file name {name!r}: expected V<version>__<description>.sql "
            "with a version of digits separated by '.' or '_' (e.g. V1_2__add_index.sql)"
        )
    data = path.read_bytes()
    try:
        checksum = flyway_checksum(data)
    except UnicodeDecodeError as exc:
        raise ValueError(f"migration {name} is not valid UTF-8: {exc}") from exc
    found = _PLACEHOLDER.search(data.decode("utf-8"))
    if found:
        raise ValueError(
            f"migration {name} contains {found.group(0)!r}: Flyway would treat it as a "
            "placeholder, which this runner does not substitute"
        )
    return MigrationFile(
        version=version.replace("_", "."),
        description=rest.replace("_", " "),
        script=path.relative_to(root).as_posix(),
        checksum=checksum,
        path=path,
    )


def discover(migrations_dir: Path) -> list[MigrationFile]:
    """All versioned migrations under ``migrations_dir`` (recursively, like Flyway), in order.

    Raises ``ValueError`` for a badly named ``V*.sql`` file, a repeatable ``R__*.sql``
    file (unsupported), a placeholder, invalid UTF-8 or two files with the same version.
    """
    files: list[MigrationFile] = []
    for path in sorted(migrations_dir.rglob("*.sql")):
        if not path.is_file():
            continue
        if path.name.startswith("R__"):
            raise ValueError(f"repeatable migration {path.name} is not supported")
        if path.name.startswith("V"):
            files.append(_parse_name(path, migrations_dir))
    files.sort(key=lambda f: version_key(f.version))
    for before, after in itertools.pairwise(files):
        if version_key(before.version) == version_key(after.version):
            raise ValueError(
                f"found more than one migration with version {after.version}: "
                f"{before.script} and {after.script}"
            )
    return files


def plan(rows: Sequence[Applied], files: Sequence[MigrationFile]) -> list[MigrationInfo]:
    """Compare history rows with files the way ``flyway info`` does, sorted by version."""
    applied = {version_key(row.version): row for row in rows}  # the last row of a version wins
    by_key = {version_key(f.version): f for f in files}
    newest_file = max(by_key, default=())
    newest_applied = max((k for k, r in applied.items() if r.success), default=())
    out: list[tuple[tuple[int, ...], MigrationInfo]] = []
    for key, row in applied.items():
        file = by_key.get(key)
        if not row.success:
            state = FAILED
        elif file is None:
            state = FUTURE if key > newest_file else MISSING
        elif row.checksum is not None and row.checksum != file.checksum:
            state = MISMATCH
        else:
            state = SUCCESS
        out.append((key, MigrationInfo(row.version, row.description, row.script, state,
                                       row.installed_on, row.checksum)))
    for key, file in by_key.items():
        if key not in applied:
            state = IGNORED if key < newest_applied else PENDING
            out.append((key, MigrationInfo(file.version, file.description, file.script,
                                           state, None, file.checksum)))
    out.sort(key=lambda pair: pair[0])
    return [item for _, item in out]


def status_summary(applied: Sequence[tuple[str, int | None, bool]],
                   files: Sequence[MigrationFile]) -> str:
    """One word for the readiness probe from ``(version, checksum, success)`` rows.

    ``"failed"``, ``"checksum mismatch"``, ``"ahead"`` (an applied version has no file),
    ``"pending"`` (a file is not applied) or ``"up to date"``, in that precedence.
    """
    rows = [Applied(v, "", "", c, None, s) for v, c, s in applied]
    states = {item.state for item in plan(rows, files)}
    for word, matching in (("failed", {FAILED}), ("checksum mismatch", {MISMATCH}),
                           ("ahead", {FUTURE, MISSING}), ("pending", {PENDING, IGNORED})):
        if states & matching:
            return word
    return "up to date"


def _java_hash(text: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units, wrapping at 32 bits)."""
    units = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


def lock_key(schema: str) -> int:
    """The advisory lock number Flyway takes for ``<schema>.flyway_schema_history``."""
    quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, HISTORY_TABLE))
    return _LOCK_MAGIC + _java_hash(quoted)


def compatible(oldest_code: str | None, files: Sequence[MigrationFile]) -> bool:
    """Whether code whose newest migration file is ``files[-1]`` may run on the schema."""
    if oldest_code is None or not files:
        return False
    return version_key(files[-1].version) >= version_key(oldest_code)


def format_info(rows: Sequence[MigrationInfo]) -> str:
    """A fixed-width table like ``flyway info`` prints."""
    header = ("Category", "Version", "Description", "Type", "Installed On", "State")
    body = [("Versioned", r.version, r.description, "SQL",
             r.installed_on.strftime("%Y-%m-%d %H:%M:%S") if r.installed_on else "", r.state)
            for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def fmt(line: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"

    out = [rule, fmt(header), rule]
    if body:
        out += [fmt(line) for line in body]
    else:
        out.append("| " + "No migrations found".ljust(len(rule) - 4) + " |")
    out.append(rule)
    return "\n".join(out)
