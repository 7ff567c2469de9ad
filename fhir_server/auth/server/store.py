"""The authorization server's tables (migration V7), on a synchronous connection pool.

authlib calls its hooks synchronously, so everything here runs in a worker thread. Each
function is one short transaction; the ones that consume a credential (a code, a refresh
token, an assertion ``jti``) do it in one ``UPDATE ... RETURNING`` or ``INSERT ... ON
CONFLICT`` so that two concurrent uses cannot both win.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from fhir_server.auth.server.hashing import token_hash

KINDS = ("public", "confidential", "backend")


@dataclass(frozen=True)
class ClientRow:
    """A registered client."""

    client_id: str
    name: str
    kind: str
    secret_hash: str | None
    redirect_uris: list[str]
    scope: str
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class UserRow:
    """A person who logs in."""

    username: str
    password_hash: str
    fhir_user: str | None
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class CodeRow:
    """An authorization code (consumed)."""

    client_id: str
    username: str
    redirect_uri: str
    scope: str
    audience: str
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    patient: str | None
    encounter: str | None
    auth_time: datetime
    code_hash: str = ""


@dataclass(frozen=True)
class RefreshRow:
    """A refresh token."""

    token_hash: str
    family_id: uuid.UUID
    client_id: str
    username: str | None
    scope: str
    audience: str
    patient: str | None
    encounter: str | None
    fhir_user: str | None
    access_jti: str
    access_expires_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class Grant:
    """What a token was issued for: who, to whom, with which context."""

    client_id: str
    username: str | None
    scope: str
    audience: str
    patient: str | None = None
    encounter: str | None = None
    fhir_user: str | None = None


_CLIENT = "SELECT client_id, name, kind, secret_hash, redirect_uris, scope, jwks, jwks_uri, " \
          "disabled, created_at FROM auth_client"
_USER = "SELECT username, password_hash, fhir_user, disabled, created_at FROM auth_user"
_REFRESH = ("token_hash, family_id, client_id, username, scope, audience, patient, encounter,"
            " fhir_user, access_jti, access_expires_at, expires_at, used_at, revoked_at")


class Store:
    """Reads and writes of the authorization server's tables."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    @classmethod
    def connect(cls, database_url: str, max_size: int = 4) -> Store:
        """A store on a pool of its own (opened without waiting for the database)."""
        # min_size 0: logins are rare; no idle connection is held for them per worker
        pool: ConnectionPool = ConnectionPool(database_url, min_size=0, max_size=max_size,
                                              open=False, name="auth-server")
        pool.open(wait=False)
        return cls(pool)

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()

    # --- clients ---------------------------------------------------------------------

    def client(self, client_id: str) -> ClientRow | None:
        """An enabled client."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(ClientRow)
                                                         ) as cur:
            cur.execute(_CLIENT + " WHERE client_id = %s AND NOT disabled", (client_id,))
            return cur.fetchone()

    def clients(self) -> list[ClientRow]:
        """Every client, oldest first."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(ClientRow)
                                                         ) as cur:
            cur.execute(_CLIENT + " ORDER BY created_at, client_id")
            return cur.fetchall()

    def add_client(self, *, name: str, kind: str, secret_hash: str | None,
                   redirect_uris: list[str], scope: str, jwks: dict[str, Any] | None,
                   jwks_uri: str | None, client_id: str | None = None) -> str:
        """Register a client; returns its id."""
        client_id = client_id or secrets.token_urlsafe(16)
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO auth_client (client_id, name, kind, secret_hash, redirect_uris,"
                " scope, jwks, jwks_uri) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (client_id, name, kind, secret_hash, redirect_uris, scope,
                 Jsonb(jwks) if jwks is not None else None, jwks_uri))
        return client_id

    def remove_client(self, client_id: str) -> bool:
        """Delete a client (its codes and refresh tokens go with it)."""
        with self.pool.connection() as conn:
            self._revoke_where(conn, "client_id = %s", (client_id,))
            cur = conn.execute("DELETE FROM auth_client WHERE client_id = %s", (client_id,))
            return cur.rowcount > 0

    # --- users -----------------------------------------------------------------------

    def user(self, username: str) -> UserRow | None:
        """A user, disabled or not."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(UserRow)
                                                         ) as cur:
            cur.execute(_USER + " WHERE username = %s", (username,))
            return cur.fetchone()

    def users(self) -> list[UserRow]:
        """Every user, by name."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(UserRow)
                                                         ) as cur:
            cur.execute(_USER + " ORDER BY username")
            return cur.fetchall()

    def add_user(self, username: str, password_hash: str, fhir_user: str | None) -> None:
        """Add a user (or replace the password and fhirUser of an existing one)."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO auth_user (username, password_hash, fhir_user) VALUES (%s, %s, %s)"
                " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash,"
                " fhir_user = excluded.fhir_user, disabled = false",
                (username, password_hash, fhir_user))

    def disable_user(self, username: str) -> bool:
        """Disable a user and revoke the refresh tokens issued on their behalf."""
        with self.pool.connection() as conn:
            cur = conn.execute("UPDATE auth_user SET disabled = true WHERE username = %s",
                               (username,))
            self._revoke_where(conn, "username = %s", (username,))
            return cur.rowcount > 0

    # --- authorization codes ---------------------------------------------------------

    def save_code(self, code: str, row: CodeRow, ttl: int) -> None:
        """Store a new authorization code (its hash) for ``ttl`` seconds."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO auth_code (code_hash, client_id, username, redirect_uri, scope,"
                " audience, code_challenge, code_challenge_method, nonce, patient, encounter,"
                " auth_time, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, now() + %s)",
                (token_hash(code), row.client_id, row.username, row.redirect_uri, row.scope,
                 row.audience, row.code_challenge, row.code_challenge_method, row.nonce,
                 row.patient, row.encounter, row.auth_time, timedelta(seconds=ttl)))

    def take_code(self, code: str, client_id: str) -> tuple[CodeRow | None, list[
            tuple[str, datetime]]]:
        """Consume a code of ``client_id``: the code (None if unknown, expired or used)
        and, for a code used twice, the access tokens issued from it, now revoked."""
        digest = token_hash(code)
        with self.pool.connection() as conn:
            with conn.cursor(row_factory=class_row(CodeRow)) as cur:
                cur.execute(
                    "UPDATE auth_code SET used_at = now() WHERE code_hash = %s AND"
                    " client_id = %s AND used_at IS NULL AND expires_at > now() RETURNING"
                    " client_id, username, redirect_uri, scope, audience, code_challenge,"
                    " code_challenge_method, nonce, patient, encounter, auth_time, code_hash",
                    (digest, client_id))
                row = cur.fetchone()
            if row is not None:
                return row, []
            found = conn.execute(
                "SELECT family_id FROM auth_code WHERE code_hash = %s AND used_at IS NOT NULL"
                " AND family_id IS NOT NULL", (digest,)).fetchone()
            if found is None:
                return None, []
            return None, self._revoke_where(conn, "family_id = %s", (found[0],))

    def code_issued(self, code_hash: str, family_id: uuid.UUID, access_jti: str) -> None:
        """Remember what a code was exchanged for (revoked if the code comes back)."""
        with self.pool.connection() as conn:
            conn.execute("UPDATE auth_code SET family_id = %s, access_jti = %s WHERE"
                         " code_hash = %s", (family_id, access_jti, code_hash))

    def nonce_used(self, client_id: str, nonce: str) -> bool:
        """Whether a code of ``client_id`` already carries ``nonce`` (replay)."""
        with self.pool.connection() as conn:
            return conn.execute("SELECT 1 FROM auth_code WHERE client_id = %s AND nonce = %s"
                                " LIMIT 1", (client_id, nonce)).fetchone() is not None

    # --- refresh tokens --------------------------------------------------------------

    def save_refresh(self, token: str, family_id: uuid.UUID, grant: Grant, access_jti: str,
                     access_expires: int, ttl: int) -> None:
        """Store a refresh token (its hash) with the access token issued alongside."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO auth_refresh_token (token_hash, family_id, client_id, username,"
                " scope, audience, patient, encounter, fhir_user, access_jti,"
                " access_expires_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, to_timestamp(%s), now() + %s)",
                (token_hash(token), family_id, grant.client_id, grant.username, grant.scope,
                 grant.audience, grant.patient, grant.encounter, grant.fhir_user, access_jti,
                 access_expires, timedelta(seconds=ttl)))

    def refresh(self, token: str) -> RefreshRow | None:
        """A refresh token as stored (used, revoked or expired ones included)."""
        with self.pool.connection() as conn, conn.cursor(row_factory=class_row(RefreshRow)
                                                         ) as cur:
            cur.execute(f"SELECT {_REFRESH} FROM auth_refresh_token WHERE token_hash = %s",
                        (token_hash(token),))
            return cur.fetchone()

    def take_refresh(self, token: str) -> tuple[RefreshRow | None, list[tuple[str, datetime]]]:
        """Consume a refresh token (rotation): the token, or None and, when it had been
        used already (stolen and replayed), its whole family and their access tokens
        revoked."""
        with self.pool.connection() as conn:
            with conn.cursor(row_factory=class_row(RefreshRow)) as cur:
                cur.execute(
                    f"UPDATE auth_refresh_token SET used_at = now() WHERE token_hash = %s AND"
                    f" used_at IS NULL AND revoked_at IS NULL AND expires_at > now()"
                    f" RETURNING {_REFRESH}", (token_hash(token),))
                row = cur.fetchone()
            if row is not None:
                return row, []
            found = conn.execute(
                "SELECT family_id FROM auth_refresh_token WHERE token_hash = %s AND"
                " used_at IS NOT NULL", (token_hash(token),)).fetchone()
            if found is None:
                return None, []
            return None, self._revoke_where(conn, "family_id = %s", (found[0],))

    def revoke_family(self, family_id: uuid.UUID) -> list[tuple[str, datetime]]:
        """Revoke a refresh token family and the access tokens issued from it."""
        with self.pool.connection() as conn:
            return self._revoke_where(conn, "family_id = %s", (family_id,))

    @staticmethod
    def _revoke_where(conn: psycopg.Connection[Any], where: str, params: tuple[Any, ...]
                      ) -> list[tuple[str, datetime]]:
        rows = conn.execute(
            f"UPDATE auth_refresh_token SET revoked_at = coalesce(revoked_at, now()) WHERE"
            f" {where} RETURNING access_jti, access_expires_at", params).fetchall()
        found = [(str(jti), expires) for jti, expires in rows]
        _insert_revoked(conn, found)
        return found

    def revoke_access(self, jti: str, expires: int) -> None:
        """Revoke one access token (``auth_revoked_token``)."""
        with self.pool.connection() as conn:
            conn.execute("INSERT INTO auth_revoked_token (jti, expires_at) VALUES"
                         " (%s, to_timestamp(%s)) ON CONFLICT DO NOTHING", (jti, expires))

    def revoked(self, jti: str) -> bool:
        """Whether an access token has been revoked."""
        with self.pool.connection() as conn:
            return conn.execute("SELECT 1 FROM auth_revoked_token WHERE jti = %s",
                                (jti,)).fetchone() is not None

    # --- launch contexts, assertion replay, secrets ----------------------------------

    def add_launch(self, patient: str | None, encounter: str | None, ttl: int) -> str:
        """Store an EHR launch context; returns its launch id."""
        launch = secrets.token_urlsafe(24)
        with self.pool.connection() as conn:
            conn.execute("INSERT INTO auth_launch (launch_id, patient, encounter, expires_at)"
                         " VALUES (%s, %s, %s, now() + %s)",
                         (launch, patient, encounter, timedelta(seconds=ttl)))
        return launch

    def launch(self, launch_id: str) -> tuple[str | None, str | None] | None:
        """The (patient, encounter) of an unexpired launch id."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT patient, encounter FROM auth_launch WHERE"
                               " launch_id = %s AND expires_at > now()", (launch_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def first_use_of_jti(self, client_id: str, jti: str, expires: float) -> bool:
        """Record a client assertion's ``jti``; False when it was seen before."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM auth_assertion_jti WHERE expires_at < now() - interval"
                         " '1 hour'")
            cur = conn.execute(
                "INSERT INTO auth_assertion_jti (client_id, jti, expires_at) VALUES"
                " (%s, %s, to_timestamp(%s)) ON CONFLICT DO NOTHING", (client_id, jti, expires))
            return cur.rowcount == 1

    def secret(self, name: str) -> bytes:
        """A random 32-byte secret of the server, made on first use."""
        with self.pool.connection() as conn:
            conn.execute("INSERT INTO auth_secret (name, secret) VALUES (%s, %s)"
                         " ON CONFLICT DO NOTHING", (name, secrets.token_bytes(32)))
            row = conn.execute("SELECT secret FROM auth_secret WHERE name = %s",
                               (name,)).fetchone()
        assert row is not None
        return bytes(row[0])

    def patients(self, name: str, limit: int = 20) -> list[tuple[str, dict[str, Any]]]:
        """Patients (id, content) whose names contain ``name`` (all when empty)."""
        pattern = "%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, content FROM resource WHERE resource_type = 'Patient' AND NOT"
                " deleted AND (%s = '' OR (jsonb_typeof(content -> 'name') = 'array' AND EXISTS ("
                " SELECT 1 FROM jsonb_array_elements(content -> 'name') AS n WHERE"
                " concat_ws(' ', n ->> 'text', n ->> 'family', CASE WHEN jsonb_typeof(n ->"
                " 'given') = 'array' THEN (SELECT string_agg(g, ' ') FROM"
                " jsonb_array_elements_text(n -> 'given') AS g) END) ILIKE %s))) ORDER BY"
                " last_updated DESC, id LIMIT %s", (name, pattern, limit)).fetchall()
        return [(str(i), c) for i, c in rows]

    def patient_exists(self, patient_id: str) -> bool:
        """Whether ``Patient/patient_id`` exists and is not deleted."""
        with self.pool.connection() as conn:
            return conn.execute("SELECT 1 FROM resource WHERE resource_type = 'Patient' AND"
                                " id = %s AND NOT deleted", (patient_id,)).fetchone() is not None


def _insert_revoked(conn: psycopg.Connection[Any], found: list[tuple[str, datetime]]) -> None:
    if found:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO auth_revoked_token (jti, expires_at) VALUES (%s, %s)"
                            " ON CONFLICT DO NOTHING", found)
