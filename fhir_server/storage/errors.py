"""Translate PostgreSQL and pool failures into FhirErrors (SQLSTATE -> HTTP)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from psycopg import errors as pg

from fhir_server.errors import (
    BadRequest,
    Conflict,
    FhirError,
    PreconditionFailed,
    ServiceUnavailable,
    Timeout,
)

log = logging.getLogger(__name__)

#: How fhir_write says that a concurrent transaction inserted the same new id first.
CREATED_CONCURRENTLY = "was created concurrently"


def translate(exc: BaseException) -> FhirError | None:
    """The FhirError for a database exception, or None when it is a real bug."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return ServiceUnavailable("no database connection available; try again later",
                                  headers={"Retry-After": "1"})
    if isinstance(exc, pg.QueryCanceled):
        return Timeout("the database statement ran past its time limit")
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        message = exc.diag.message_primary or str(exc)
        if state == "FH412":
            return PreconditionFailed(message)
        if state in ("FH409", "23505", "40001", "40P01"):
            return Conflict(message)
        if state in ("22P05", "22021", "22P02", "54000", "54001"):
            # Untranslatable characters, bad encodings, values or sizes PostgreSQL refuses.
            return BadRequest(f"the database refused a value: {message}")
        if isinstance(exc, psycopg.OperationalError) or state.startswith(("08", "57P")):
            return ServiceUnavailable("the database is unavailable; try again later",
                                      headers={"Retry-After": "5"})
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Run a block, re-raising database failures as FhirErrors."""
    try:
        yield
    except FhirError:
        raise
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        if mapped.status >= 500:
            log.warning("database error: %s", exc)
        raise mapped from exc
