-- Authorization: the keys the built-in authorization server signs tokens with, and the
-- access tokens revoked before they expire (RFC 7009).

CREATE TABLE auth_signing_key (
    kid         text        PRIMARY KEY,
    alg         text        NOT NULL,
    -- the private JWK; only the server (and operators with database access) read it
    private_jwk jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- set when a newer key took over: it no longer signs, but stays published until
    -- the tokens it signed have expired
    retired_at  timestamptz
);
-- At most one key signs at a time.
CREATE UNIQUE INDEX auth_signing_key_current ON auth_signing_key ((true))
    WHERE retired_at IS NULL;

CREATE TABLE auth_revoked_token (
    jti        text        PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_revoked_token_expiry ON auth_revoked_token (expires_at);
