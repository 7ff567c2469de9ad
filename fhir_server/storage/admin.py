"""Administrative database steps run by the command line: migrate, info, start checks."""

from __future__ import annotations

from pathlib import Path

import psycopg

from fhir_server.storage import migrate
from fhir_server.storage.migration_files import MigrationInfo, compatible, discover


def apply_migrations(url: str, migrations_dir: Path) -> list[MigrationInfo]:
    """Apply pending migrations; MigrationError on checksum mismatch, failure or ahead."""
    with psycopg.connect(url, autocommit=True) as conn:
        return migrate.migrate(conn, migrations_dir)


def migration_info(url: str, migrations_dir: Path) -> list[MigrationInfo]:
    """Applied and pending migrations, as ``flyway info`` lists them."""
    with psycopg.connect(url, autocommit=True) as conn:
        return migrate.info(conn, migrations_dir)


#: The database has newer migrations that declare this release compatible.
AHEAD_COMPATIBLE = "ahead, compatible"


def text_search_config_known(url: str, config: str) -> bool:
    """Whether ``config`` (``SEARCH_TEXT_LANGUAGE``) names a text search configuration
    of the database: with an unknown one every write would fail."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        try:
            conn.execute("SELECT %s::regconfig", (config,))
        except psycopg.errors.UndefinedObject:
            return False
    return True


def start_check(url: str, migrations_dir: Path) -> str:
    """The migration state at start: ``up to date``, ``pending``, ``ahead``, ...

    Same words as the readiness probe; derived from the ``flyway info`` states.
    """
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        states = {row.state for row in migrate.info(conn, migrations_dir)}
        oldest = migrate.read_compatibility(conn)
    if states & {"Future", "Missing"} and not states & {"Failed", "Checksum mismatch"} \
            and compatible(oldest, discover(migrations_dir)):
        return AHEAD_COMPATIBLE
    for state, summary in (("Failed", "failed"), ("Checksum mismatch", "checksum mismatch"),
                           ("Future", "ahead"), ("Missing", "ahead"),
                           ("Pending", "pending"), ("Ignored", "pending")):
        if state in states:
            return summary
    return "up to date"
