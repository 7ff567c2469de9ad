"""The Flyway-compatible migration runner: ``flyway migrate`` and ``flyway info``.

Operators also run the real Flyway against the same database, so the history table is
Flyway's: ``flyway_schema_history`` and its index (PostgreSQL DDL of
``PostgreSQLDatabase.getRawCreateScript``), guarded by Flyway's advisory lock. The files
themselves (names, checksums, states) are :mod:`fhir_server.storage.migration_files`.

Differences, deliberately stricter: a database with applied versions that have no file
("ahead") is refused, and Flyway baselines are not understood. Every migration runs in
one transaction with its history row, so ``CREATE INDEX CONCURRENTLY`` and the like
cannot be used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from fhir_server.storage.migration_files import (
    FAILED,
    FUTURE,
    HISTORY_TABLE,
    IGNORED,
    MISMATCH,
    MISSING,
    PENDING,
    SUCCESS,
    Applied,
    MigrationFile,
    MigrationInfo,
    discover,
    flyway_checksum,
    lock_key,
    plan,
    version_key,
)

log = logging.getLogger(__name__)


class MigrationError(Exception):
    """A migration run was refused or failed; the message says which file and why."""


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


def _read_rows(conn: psycopg.Connection, schema: str) -> list[Applied]:
    cur = conn.execute(_SELECT_ROWS.format(_table(schema)))
    return [Applied(*row) for row in cur.fetchall()]


def info(conn: psycopg.Connection, migrations_dir: Path) -> list[MigrationInfo]:
    """What ``flyway info`` shows: every applied version and every file, with its state."""
    files = discover(migrations_dir)
    with conn.transaction():
        schema, exists = _locate(conn)
        rows = _read_rows(conn, schema) if exists else []
    return plan(rows, files)


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


def _validate(items: Sequence[MigrationInfo], files: Sequence[MigrationFile]) -> None:
    """Refuse, like Flyway's validate, anything but applied-and-equal or pending-on-top."""
    by_key = {version_key(f.version): f for f in files}
    problems: list[str] = []
    for item in items:
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
        items = plan(_read_rows(conn, schema), files)
        _validate(items, files)
        pending = {p.version for p in items if p.state == PENDING}
        return [_apply(conn, schema, user, f) for f in files if f.version in pending]
    finally:
        try:
            conn.execute(sql.SQL("SELECT pg_advisory_unlock(%s)"), (key,))
        except psycopg.Error:  # a broken session has lost the lock anyway
            log.warning("could not release the migration lock", exc_info=True)


_COMPAT = sql.SQL("SELECT oldest_compatible_code FROM schema_compatibility")
_COMPAT_EXISTS = sql.SQL("SELECT to_regclass('schema_compatibility') IS NOT NULL")


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
