"""Flyway-compatible SQL migrations: ``V<version>__<description>.sql`` files.

Operators also run the real ``flyway migrate`` / ``flyway info`` against the same
database, so everything observable is Flyway's: the ``flyway_schema_history`` table
and its index (PostgreSQL DDL of ``PostgreSQLDatabase.getRawCreateScript``), the
CRC32 checksum of ``ChecksumCalculator``, versions normalised like
``MigrationVersion`` (``1_1`` -> ``1.1``, trailing zero parts ignored when comparing),
descriptions with ``_`` turned into spaces, and the advisory-lock number of
``PostgreSQLAdvisoryLockTemplate`` so that our runner and Flyway exclude each other.

Differences, deliberately stricter: badly named ``V*.sql`` files, repeatable
(``R__``) files and ``${placeholders}`` are refused instead of being skipped or
substituted, a database with applied versions that have no file ("ahead") is refused,
and Flyway baselines are not understood. Every migration runs in one transaction with
its history row, so ``CREATE INDEX CONCURRENTLY`` and the like cannot be used.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

log = logging.getLogger(__name__)

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


class MigrationError(Exception):
    """A migration run was refused or failed; the message says which file and why."""


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
class _Applied:
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


def _plan(rows: Sequence[_Applied], files: Sequence[MigrationFile]) -> list[MigrationInfo]:
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
    rows = [_Applied(v, "", "", c, None, s) for v, c, s in applied]
    states = {item.state for item in _plan(rows, files)}
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


_SELECT_ROWS = sql.SQL(
    "SELECT version, description, script, checksum, installed_on, success FROM {}"
    " WHERE version IS NOT NULL ORDER BY installed_rank"
)
_TABLE_SCHEMA = sql.SQL(
    "SELECT current_schema(), EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema() AND c.relname = %s)"
)
_INSERT = sql.SQL(
    "INSERT INTO {t} (installed_rank, version, description, type, script, checksum,"
    " installed_by, execution_time, success)"
    " SELECT COALESCE(MAX(installed_rank), 0) + 1, %s, %s, 'SQL', %s, %s, %s, %s, true FROM {t}"
    " RETURNING installed_on"
)


def _table(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, HISTORY_TABLE)


def _locate(conn: psycopg.Connection) -> tuple[str, bool]:
    """The current schema (where Flyway keeps its table) and whether the table exists."""
    row = conn.execute(_TABLE_SCHEMA, (HISTORY_TABLE,)).fetchone()
    if row is None or row[0] is None:
        raise MigrationError("no current schema: the search_path names no existing schema")
    return str(row[0]), bool(row[1])


def _read_rows(conn: psycopg.Connection, schema: str) -> list[_Applied]:
    cur = conn.execute(_SELECT_ROWS.format(_table(schema)))
    return [_Applied(*row) for row in cur.fetchall()]


def info(conn: psycopg.Connection, migrations_dir: Path) -> list[MigrationInfo]:
    """What ``flyway info`` shows: every applied version and every file, with its state."""
    files = discover(migrations_dir)
    with conn.transaction():
        schema, exists = _locate(conn)
        rows = _read_rows(conn, schema) if exists else []
    return _plan(rows, files)


async def read_applied(aconn: psycopg.AsyncConnection) -> list[tuple[str, int | None, bool]]:
    """``(version, checksum, success)`` of the history rows, [] when there is no table."""
    cur = await aconn.execute(_TABLE_SCHEMA, (HISTORY_TABLE,))
    row = await cur.fetchone()
    if row is None or row[0] is None or not row[1]:
        return []
    query = sql.SQL(
        "SELECT version, checksum, success FROM {} WHERE version IS NOT NULL"
        " ORDER BY installed_rank"
    ).format(_table(str(row[0])))
    cur = await aconn.execute(query)
    return [(str(v), c, bool(s)) for v, c, s in await cur.fetchall()]


def _create_table(conn: psycopg.Connection, schema: str) -> None:
    """Flyway's PostgreSQL history table, primary key and index, in one transaction."""
    table = _table(schema)
    with conn.transaction():
        conn.execute(sql.SQL(
            "CREATE TABLE {} ("
            " installed_rank INT NOT NULL, version VARCHAR(50),"
            " description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL,"
            " script VARCHAR(1000) NOT NULL, checksum INTEGER,"
            " installed_by VARCHAR(100) NOT NULL,"
            " installed_on TIMESTAMP NOT NULL DEFAULT now(),"
            " execution_time INTEGER NOT NULL, success BOOLEAN NOT NULL)"
        ).format(table))
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (installed_rank)")
                     .format(table, sql.Identifier(f"{HISTORY_TABLE}_pk")))
        conn.execute(sql.SQL("CREATE INDEX {} ON {} (success)")
                     .format(sql.Identifier(f"{HISTORY_TABLE}_s_idx"), table))


_AHEAD = "Database is ahead of the migration files: version {} is applied but no such file exists"
_REFUSALS = {
    FAILED: "Detected failed migration to version {}: remove its half-completed changes and"
            " its history row, then retry",
    FUTURE: _AHEAD,
    MISSING: _AHEAD,
    IGNORED: "Detected resolved migration not applied to database: {} is older than the"
             " newest applied version (out of order)",
}


def _validate(plan: Sequence[MigrationInfo], files: Sequence[MigrationFile]) -> None:
    """Refuse, like Flyway's validate, anything but applied-and-equal or pending-on-top."""
    by_key = {version_key(f.version): f for f in files}
    problems: list[str] = []
    for item in plan:
        file = by_key.get(version_key(item.version))
        if item.state in _REFUSALS:
            problems.append(_REFUSALS[item.state].format(f"{item.version} ({item.script})"))
            continue
        if file is None:
            continue
        if item.state == MISMATCH:
            what, recorded, local = "checksum", str(item.checksum), str(file.checksum)
        elif _abbreviate(file.description) != item.description:
            what, recorded, local = "description", item.description, file.description
        else:
            continue
        problems.append(f"Migration {what} mismatch for migration version {item.version}"
                        f" ({file.script})\n-> Applied to database : {recorded}"
                        f"\n-> Resolved locally    : {local}")
    if problems:
        raise MigrationError("Validate failed:\n" + "\n".join(problems))


# Flyway's AbbreviationUtils, to fit VARCHAR(200) and VARCHAR(1000).
def _abbreviate(description: str) -> str:
    return description if len(description) <= 200 else description[:197] + "..."


def _abbreviate_script(script: str) -> str:
    return script if len(script) <= 1000 else "..." + script[3:1000]


def _failure(file: MigrationFile, text: str, exc: psycopg.Error) -> MigrationError:
    """A message naming the file, SQLSTATE, PostgreSQL's message and the line."""
    diag = exc.diag
    lines = [f"Migration {file.script} failed", f"SQL State  : {exc.sqlstate or '-'}",
             f"Message    : {diag.message_primary or str(exc).strip()}"]
    if diag.message_detail:
        lines.append(f"Detail     : {diag.message_detail}")
    if diag.message_hint:
        lines.append(f"Hint       : {diag.message_hint}")
    if diag.statement_position and diag.statement_position.isdigit():
        # The position counts characters of the whole file, which is sent as one query.
        line_no = text[: int(diag.statement_position) - 1].count("\n") + 1
        lines.append(f"Line       : {line_no}")
    if diag.context:
        lines.append(f"Context    : {diag.context}")
    return MigrationError("\n".join(lines))


def _apply(conn: psycopg.Connection, schema: str, user: str,
           file: MigrationFile) -> MigrationInfo:
    """Run one file and record it in one transaction; nothing remains if it fails."""
    text = file.path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    if flyway_checksum(text.encode("utf-8")) != file.checksum:
        raise MigrationError(f"Migration {file.script} changed while migrating; retry")
    try:
        with conn.transaction():
            started = time.monotonic()
            # No parameters: psycopg uses the simple protocol, so a file may hold many
            # statements and '%' needs no escaping.
            conn.execute(sql.SQL(text))
            if conn.info.transaction_status != TransactionStatus.INTRANS:
                raise MigrationError(f"Migration {file.script} ended its own transaction"
                                     " (COMMIT/ROLLBACK in the file); check the database")
            elapsed = int((time.monotonic() - started) * 1000)
            row = conn.execute(_INSERT.format(t=_table(schema)), (
                file.version, _abbreviate(file.description), _abbreviate_script(file.script),
                file.checksum, user[:100], elapsed)).fetchone()
    except psycopg.Error as exc:
        raise _failure(file, text, exc) from exc
    log.info("applied migration %s in %d ms", file.script, elapsed)
    return MigrationInfo(file.version, file.description, file.script, SUCCESS,
                         row[0] if row else None, file.checksum)


def migrate(conn: psycopg.Connection, migrations_dir: Path) -> list[MigrationInfo]:
    """Apply the pending migrations in version order; return what was applied.

    Holds Flyway's advisory lock for the whole run, so concurrent runners (ours or
    Flyway) wait and then find nothing to do. ``conn`` must not be inside a transaction;
    it is switched to autocommit for the run and restored afterwards. Set
    ``lock_timeout`` on it to bound the wait. Raises ``MigrationError`` on a bad file,
    a failed or changed migration, or a database ahead of the files.
    """
    try:
        files = discover(migrations_dir)
    except (ValueError, OSError) as exc:
        raise MigrationError(str(exc)) from exc
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise MigrationError("migrate() needs a connection that is not inside a transaction")
    autocommit = conn.autocommit
    conn.autocommit = True  # each migration commits on its own
    try:
        return _migrate_locked(conn, files)
    finally:
        if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
            conn.autocommit = autocommit


def _migrate_locked(conn: psycopg.Connection, files: list[MigrationFile]) -> list[MigrationInfo]:
    """Take the lock, create the table if needed, validate, then apply what is pending."""
    schema, _ = _locate(conn)
    key = lock_key(schema)
    row = conn.execute(sql.SQL("SELECT current_user")).fetchone()
    user = str(row[0]) if row else ""
    try:
        conn.execute(sql.SQL("SELECT pg_advisory_lock(%s)"), (key,))
    except psycopg.Error as exc:
        raise MigrationError(f"could not take the migration lock: {exc}") from exc
    try:
        # Re-read after the lock: another runner may have created or filled the table.
        schema, exists = _locate(conn)
        if not exists:
            _create_table(conn, schema)
        plan = _plan(_read_rows(conn, schema), files)
        _validate(plan, files)
        pending = {p.version for p in plan if p.state == PENDING}
        return [_apply(conn, schema, user, f) for f in files if f.version in pending]
    finally:
        try:
            conn.execute(sql.SQL("SELECT pg_advisory_unlock(%s)"), (key,))
        except psycopg.Error:  # a broken session has lost the lock anyway
            log.warning("could not release the migration lock", exc_info=True)


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


_COMPAT = sql.SQL("SELECT oldest_compatible_code FROM schema_compatibility")
_COMPAT_EXISTS = "SELECT to_regclass('schema_compatibility') IS NOT NULL"


def compatible(oldest_code: str | None, files: Sequence[MigrationFile]) -> bool:
    """Whether code whose newest migration file is ``files[-1]`` may run on the schema."""
    if oldest_code is None or not files:
        return False
    return version_key(files[-1].version) >= version_key(oldest_code)


def read_compatibility(conn: psycopg.Connection) -> str | None:
    """``schema_compatibility.oldest_compatible_code``, or None without the table."""
    row = conn.execute(_COMPAT_EXISTS).fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute(_COMPAT).fetchone()
    return None if found is None else str(found[0])


async def read_compatibility_async(aconn: psycopg.AsyncConnection) -> str | None:
    """Like :func:`read_compatibility`, on an async connection (readiness probe)."""
    cur = await aconn.execute(_COMPAT_EXISTS)
    row = await cur.fetchone()
    if not row or not row[0]:
        return None
    cur = await aconn.execute(_COMPAT)
    found = await cur.fetchone()
    return None if found is None else str(found[0])
