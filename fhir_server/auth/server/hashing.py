"""Hashes of what the authorization server must recognise but never store in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

#: scrypt cost (RFC 7914): 2**15 x 8 takes about 50 ms and 32 MiB per check
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024
#: a password hash checked when the user is unknown, so that both take as long
_DUMMY = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` (``scrypt$N$r$p$salt$hash``)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM,
                            dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (None: an unknown user, always False)."""
    try:
        kind, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        if kind != "scrypt":
            return False
        found = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r),
                               p=int(p), maxmem=_MAXMEM, dklen=32)
    except (ValueError, TypeError):
        return False
    return stored is not None and hmac.compare_digest(found, _unb64(digest))


def token_hash(value: str) -> str:
    """The SHA-256 of a high-entropy credential (codes, refresh tokens, client secrets)."""
    return hashlib.sha256(value.encode()).hexdigest()


def check_token(value: str, stored: str | None) -> bool:
    """Whether ``value`` hashes to ``stored``, in constant time."""
    return stored is not None and hmac.compare_digest(token_hash(value), stored)


def new_token(nbytes: int = 32) -> str:
    """A random URL-safe credential."""
    return secrets.token_urlsafe(nbytes)
