"""The Flyway-compatible migration runner against a real PostgreSQL.

One scratch database per module (``DATABASE_URL`` names the server); every test works
in its own schema, because the history table lives in the connection's current schema.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from fhir_server.storage.migrate import MigrationError, info, migrate, read_applied
from fhir_server.storage.migration_files import (
    MigrationInfo,
    discover,
    flyway_checksum,
    lock_key,
    status_summary,
)
from tests.conftest import scratch_name

SEED_A = "INSERT INTO a VALUES (1, 'x');\nINSERT INTO a VALUES (2, 'y');"
ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with(url: str, **params: str) -> str:
    parts = psycopg.conninfo.conninfo_to_dict(url)
    parts.update(params)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in parts.items() if v is not None})


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    """A scratch database for this module, dropped afterwards."""
    name = scratch_name("mig_test")
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with(ADMIN_URL, dbname=name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


@pytest.fixture
def url(db_url: str) -> str:
    """A connection string whose search_path is a fresh schema of its own."""
    schema = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return _with(db_url, options=f"-c search_path={schema}")


@pytest.fixture
def conn(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url) as c:
        yield c


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def three_files(folder: Path) -> None:
    write(folder, "V1__create_a.sql", "CREATE TABLE a (id int);\n")
    write(folder, "V1_1__add_b.sql", "ALTER TABLE a ADD COLUMN b text;\n-- 100% done\n")
    write(folder, "V2__seed_a.sql", SEED_A)


def history(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    with conn.transaction():
        return conn.execute(
            "SELECT installed_rank, version, description, type, script, checksum, success"
            " FROM flyway_schema_history ORDER BY installed_rank").fetchall()


def states(rows: list[MigrationInfo]) -> list[tuple[str, str]]:
    return [(r.version, r.state) for r in rows]


def summary(url: str, folder: Path) -> str:
    async def run() -> str:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
            return status_summary(await read_applied(aconn), discover(folder))

    return asyncio.run(run())


def test_applies_in_order_and_records_like_flyway(conn: psycopg.Connection,
                                                  tmp_path: Path) -> None:
    three_files(tmp_path)
    applied = migrate(conn, tmp_path)
    assert [(m.version, m.state) for m in applied] == [
        ("1", "Success"), ("1.1", "Success"), ("2", "Success")]
    assert all(m.installed_on is not None for m in applied)
    files = discover(tmp_path)
    assert history(conn) == [
        (i + 1, f.version, f.description, "SQL", f.script, f.checksum, True)
        for i, f in enumerate(files)
    ]
    assert history(conn)[1][2] == "add b"
    with conn.transaction():
        assert conn.execute("SELECT count(*) FROM a").fetchone() == (2,)
        row = conn.execute("SELECT bool_and(installed_by = current_user),"
                           " bool_and(execution_time >= 0) FROM flyway_schema_history").fetchone()
        assert row == (True, True)


def test_history_table_has_flyways_shape(conn: psycopg.Connection, tmp_path: Path) -> None:
    migrate(conn, tmp_path)  # no files: just the table
    with conn.transaction():
        columns = conn.execute(
            "SELECT column_name, data_type, character_maximum_length, is_nullable,"
            " column_default FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'flyway_schema_history'"
            " ORDER BY ordinal_position").fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename = 'flyway_schema_history' ORDER BY indexname").fetchall()
    assert columns == [
        ("installed_rank", "integer", None, "NO", None),
        ("version", "character varying", 50, "YES", None),
        ("description", "character varying", 200, "NO", None),
        ("type", "character varying", 20, "NO", None),
        ("script", "character varying", 1000, "NO", None),
        ("checksum", "integer", None, "YES", None),
        ("installed_by", "character varying", 100, "NO", None),
        ("installed_on", "timestamp without time zone", None, "NO", "now()"),
        ("execution_time", "integer", None, "NO", None),
        ("success", "boolean", None, "NO", None),
    ]
    assert [name for name, _ in indexes] == ["flyway_schema_history_pk",
                                             "flyway_schema_history_s_idx"]
    assert indexes[1][1].endswith("USING btree (success)")


def test_second_run_is_idempotent(conn: psycopg.Connection, tmp_path: Path) -> None:
    three_files(tmp_path)
    migrate(conn, tmp_path)
    before = history(conn)
    assert migrate(conn, tmp_path) == []
    assert history(conn) == before
    # A line-ending-only change keeps Flyway's checksum, so it is not a mismatch.
    path = tmp_path / "V1__create_a.sql"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert migrate(conn, tmp_path) == []


def test_new_file_is_applied_later(conn: psycopg.Connection, tmp_path: Path) -> None:
    three_files(tmp_path)
    migrate(conn, tmp_path)
    write(tmp_path, "V10__later.sql", "CREATE TABLE later (id int);")
    assert [m.script for m in migrate(conn, tmp_path)] == ["V10__later.sql"]
    assert history(conn)[-1][:2] == (4, "10")


def test_info_states(conn: psycopg.Connection, url: str, tmp_path: Path) -> None:
    three_files(tmp_path)
    assert states(info(conn, tmp_path)) == [("1", "Pending"), ("1.1", "Pending"),
                                            ("2", "Pending")]
    assert summary(url, tmp_path) == "pending"  # no history table yet
    (tmp_path / "V2__seed_a.sql").rename(tmp_path / "V2__seed_a.off")
    migrate(conn, tmp_path)
    (tmp_path / "V2__seed_a.off").rename(tmp_path / "V2__seed_a.sql")
    rows = info(conn, tmp_path)
    assert states(rows) == [("1", "Success"), ("1.1", "Success"), ("2", "Pending")]
    assert rows[0].installed_on is not None and rows[2].installed_on is None
    assert summary(url, tmp_path) == "pending"
    migrate(conn, tmp_path)
    assert states(info(conn, tmp_path)) == [("1", "Success"), ("1.1", "Success"),
                                            ("2", "Success")]
    assert summary(url, tmp_path) == "up to date"


def test_checksum_mismatch_is_refused(conn: psycopg.Connection, url: str,
                                      tmp_path: Path) -> None:
    three_files(tmp_path)
    migrate(conn, tmp_path)
    recorded = history(conn)[1][5]
    path = write(tmp_path, "V1_1__add_b.sql", "ALTER TABLE a ADD COLUMN b varchar;\n")
    write(tmp_path, "V3__never.sql", "CREATE TABLE never (id int);")
    rows = info(conn, tmp_path)
    assert states(rows) == [("1", "Success"), ("1.1", "Checksum mismatch"), ("2", "Success"),
                            ("3", "Pending")]
    assert rows[1].checksum == recorded
    assert summary(url, tmp_path) == "checksum mismatch"
    with pytest.raises(MigrationError) as err:
        migrate(conn, tmp_path)
    message = str(err.value)
    assert "Migration checksum mismatch for migration version 1.1" in message
    assert "V1_1__add_b.sql" in message
    assert f"Applied to database : {recorded}" in message
    assert f"Resolved locally    : {flyway_checksum(path.read_bytes())}" in message
    assert len(history(conn)) == 3  # V3 was not applied


def test_renamed_description_is_refused(conn: psycopg.Connection, tmp_path: Path) -> None:
    three_files(tmp_path)
    migrate(conn, tmp_path)
    (tmp_path / "V1_1__add_b.sql").rename(tmp_path / "V1_1__add_column_b.sql")
    with pytest.raises(MigrationError) as err:  # Flyway's validate refuses this too
        migrate(conn, tmp_path)
    assert "Migration description mismatch for migration version 1.1" in str(err.value)
    assert "-> Applied to database : add b\n-> Resolved locally    : add column b" in str(
        err.value)


def test_database_ahead_of_files(conn: psycopg.Connection, url: str, tmp_path: Path) -> None:
    three_files(tmp_path)
    migrate(conn, tmp_path)
    (tmp_path / "V2__seed_a.sql").unlink()
    assert states(info(conn, tmp_path))[-1] == ("2", "Future")
    assert summary(url, tmp_path) == "ahead"
    with pytest.raises(MigrationError, match="ahead of the migration files: version 2"):
        migrate(conn, tmp_path)
    # A hole below the newest file is what Flyway calls "Missing": refused too.
    write(tmp_path, "V2__seed_a.sql", SEED_A)
    (tmp_path / "V1_1__add_b.sql").unlink()
    assert states(info(conn, tmp_path)) == [("1", "Success"), ("1.1", "Missing"),
                                            ("2", "Success")]
    assert summary(url, tmp_path) == "ahead"
    with pytest.raises(MigrationError, match=r"version 1\.1 \(V1_1__add_b\.sql\)"):
        migrate(conn, tmp_path)


def test_out_of_order_file_is_refused(conn: psycopg.Connection, url: str,
                                      tmp_path: Path) -> None:
    write(tmp_path, "V1__a.sql", "SELECT 1;")
    write(tmp_path, "V3__c.sql", "SELECT 3;")
    migrate(conn, tmp_path)
    write(tmp_path, "V2__b.sql", "SELECT 2;")
    assert states(info(conn, tmp_path))[1] == ("2", "Ignored")
    assert summary(url, tmp_path) == "pending"
    with pytest.raises(MigrationError, match="not applied to database: 2"):
        migrate(conn, tmp_path)


def test_failing_migration_leaves_nothing(conn: psycopg.Connection, url: str,
                                          tmp_path: Path) -> None:
    write(tmp_path, "V1__ok.sql", "CREATE TABLE ok (id int);")
    write(tmp_path, "V2__bad.sql",
          "CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\nSELECT * FROM nowhere;\n")
    write(tmp_path, "V3__after.sql", "CREATE TABLE after (id int);")
    with pytest.raises(MigrationError) as err:
        migrate(conn, tmp_path)
    message = str(err.value)
    assert "Migration V2__bad.sql failed" in message
    assert "42P01" in message and 'relation "nowhere" does not exist' in message
    assert "Line       : 3" in message
    assert isinstance(err.value.__cause__, psycopg.errors.UndefinedTable)
    assert [row[1] for row in history(conn)] == ["1"]
    with conn.transaction():
        assert conn.execute("SELECT to_regclass('ok') IS NOT NULL, to_regclass('half'),"
                            " to_regclass('after')").fetchone() == (True, None, None)
    assert states(info(conn, tmp_path)) == [("1", "Success"), ("2", "Pending"),
                                            ("3", "Pending")]
    assert not conn.autocommit  # restored
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # The lock was released: another session can take it at once.
    with psycopg.connect(url, autocommit=True) as other:
        key = lock_key(str(other.execute("SELECT current_schema()").fetchone()[0]))  # type: ignore[index]
        assert other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone() == (True,)


def test_failed_history_row(conn: psycopg.Connection, url: str, tmp_path: Path) -> None:
    three_files(tmp_path)
    migrate(conn, tmp_path)
    with conn.transaction():  # what Flyway leaves after a failed non-transactional migration
        conn.execute("UPDATE flyway_schema_history SET success = false WHERE version = '2'")
    assert states(info(conn, tmp_path))[-1] == ("2", "Failed")
    assert summary(url, tmp_path) == "failed"
    with pytest.raises(MigrationError, match="failed migration to version 2"):
        migrate(conn, tmp_path)


def test_refuses_a_connection_inside_a_transaction(conn: psycopg.Connection,
                                                   tmp_path: Path) -> None:
    conn.execute("SELECT 1")  # opens a transaction (autocommit is off)
    with pytest.raises(MigrationError, match="inside a transaction"):
        migrate(conn, tmp_path)
    conn.rollback()


def test_bad_file_names_are_migration_errors(conn: psycopg.Connection, tmp_path: Path) -> None:
    write(tmp_path, "V1-init.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="bad migration file name"):
        migrate(conn, tmp_path)


def test_read_applied_without_table(url: str) -> None:
    async def run() -> list[tuple[str, int | None, bool]]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
            return await read_applied(aconn)

    assert asyncio.run(run()) == []


def test_concurrent_migrators_apply_each_file_once(url: str, tmp_path: Path) -> None:
    write(tmp_path, "V1__slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(0.5);\n")
    write(tmp_path, "V2__counter.sql",
          "CREATE TABLE counter (n int);\nINSERT INTO counter VALUES (1);")
    write(tmp_path, "V3__more.sql", "INSERT INTO counter VALUES (2);")
    barrier = threading.Barrier(3)
    results: list[list[MigrationInfo]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(url) as c:
                barrier.wait()
                results.append(migrate(c, tmp_path))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 3]
    with psycopg.connect(url) as c:
        assert [row[1] for row in history(c)] == ["1", "2", "3"]
        assert c.execute("SELECT count(*) FROM counter").fetchone() == (2,)


def test_waits_for_a_lock_held_by_flyway(url: str, tmp_path: Path) -> None:
    write(tmp_path, "V1__a.sql", "CREATE TABLE a (id int);")
    with psycopg.connect(url, autocommit=True) as flyway:
        schema = flyway.execute("SELECT current_schema()").fetchone()
        assert schema is not None
        flyway.execute("SELECT pg_advisory_lock(%s)", (lock_key(str(schema[0])),))
        done = threading.Event()

        def run() -> None:
            with psycopg.connect(url) as c:
                migrate(c, tmp_path)
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # blocked on the lock Flyway would hold
        flyway.execute("SELECT pg_advisory_unlock(%s)", (lock_key(str(schema[0])),))
        thread.join(10)
        assert done.is_set()


def test_lock_timeout_is_reported(url: str, tmp_path: Path) -> None:
    with psycopg.connect(url, autocommit=True) as holder, psycopg.connect(url) as c:
        schema = holder.execute("SELECT current_schema()").fetchone()
        assert schema is not None
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(str(schema[0])),))
        c.execute("SET lock_timeout = '200ms'")
        c.commit()
        with pytest.raises(MigrationError, match="could not take the migration lock"):
            migrate(c, tmp_path)


def test_script_ending_its_transaction_is_reported(conn: psycopg.Connection,
                                                   tmp_path: Path) -> None:
    write(tmp_path, "V1__commit.sql", "CREATE TABLE a (id int);\nCOMMIT;\n")
    with pytest.raises(MigrationError, match="ended its own transaction"):
        migrate(conn, tmp_path)
    assert history(conn) == []
