"""The keys the built-in authorization server signs tokens with, kept in the database.

The first start generates one; ``fhir-server keys rotate`` makes a new one the signer
while the previous ones stay published (in ``/auth/jwks``) for ``RETIRED_PUBLISHED``, so
tokens they signed keep verifying until they expire. Every worker and the command line
read the same table, so they all sign with the same key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from joserfc.jwk import KeySet, RSAKey
from psycopg.types.json import Jsonb

#: RS256: what every OAuth client library verifies (SMART asks RS384/ES384 of clients'
#: own assertions, not of the server's tokens).
ALG = "RS256"
#: how long a retired key stays published: longer than any token it signed lives
RETIRED_PUBLISHED = timedelta(days=2)

_PUBLISHED = """
SELECT kid, private_jwk, retired_at IS NULL FROM auth_signing_key
 WHERE retired_at IS NULL OR retired_at > now() - %s
 ORDER BY created_at DESC
"""
_INSERT = """
INSERT INTO auth_signing_key (kid, alg, private_jwk) VALUES (%s, %s, %s)
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True)
class SigningKeys:
    """The key that signs now and every key still published."""

    current: RSAKey
    published: KeySet

    @property
    def kid(self) -> str:
        """The signing key's id (the ``kid`` of the tokens it signs)."""
        return str(self.current.kid)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS (``/auth/jwks``)."""
        return {"keys": [k.as_dict(private=False) for k in self.published.keys]}

    def knows(self, kid: str | None) -> bool:
        """Whether a key of that id is published."""
        return any(k.kid == kid for k in self.published.keys)


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={
        "kid": uuid.uuid4().hex, "alg": ALG, "use": "sig"})


def load_keys(conn: psycopg.Connection[Any]) -> SigningKeys:
    """The published keys; a first key is generated (once, whoever comes first)."""
    rows = conn.execute(_PUBLISHED, (RETIRED_PUBLISHED,)).fetchall()
    if not any(current for _, _, current in rows):
        key = _new_key()
        conn.execute(_INSERT, (key.kid, ALG, Jsonb(key.as_dict(private=True))))
        conn.commit()
        rows = conn.execute(_PUBLISHED, (RETIRED_PUBLISHED,)).fetchall()
    keys: list[Any] = [RSAKey.import_key(jwk) for _, jwk, _ in rows]
    current = next(k for k, (_, _, now) in zip(keys, rows, strict=True) if now)
    return SigningKeys(current, KeySet(keys))


def rotate_keys(conn: psycopg.Connection[Any]) -> str:
    """Retire the signing key and make a new one sign; returns the new key's id."""
    key = _new_key()
    with conn.transaction():
        conn.execute("UPDATE auth_signing_key SET retired_at = now() WHERE retired_at IS NULL")
        conn.execute(_INSERT, (key.kid, ALG, Jsonb(key.as_dict(private=True))))
    return str(key.kid)


def read_keys(database_url: str) -> SigningKeys:
    """``load_keys`` on a connection of its own (the command line, a worker's start)."""
    with psycopg.connect(database_url) as conn:
        return load_keys(conn)
