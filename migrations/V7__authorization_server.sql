-- The built-in OAuth 2 / SMART App Launch authorization server: registered clients, the
-- people who log in, and the short- and long-lived credentials it hands out. Codes,
-- refresh tokens and client secrets are stored as SHA-256 hashes only; passwords as
-- salted scrypt hashes.

CREATE TABLE auth_client (
    client_id     text        PRIMARY KEY,
    name          text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('public', 'confidential', 'backend')),
    secret_hash   text,
    redirect_uris text[]      NOT NULL DEFAULT '{}',
    -- the scopes the client may be granted (space-separated; wildcards allowed)
    scope         text        NOT NULL DEFAULT '',
    jwks          jsonb,
    jwks_uri      text,
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT auth_client_secret CHECK ((kind = 'confidential') = (secret_hash IS NOT NULL)),
    CONSTRAINT auth_client_keys CHECK (kind <> 'backend' OR jwks IS NOT NULL OR jwks_uri IS NOT NULL)
);

CREATE TABLE auth_user (
    username      text        PRIMARY KEY,
    password_hash text        NOT NULL,
    -- the FHIR resource the person is (Practitioner/123, Patient/abc)
    fhir_user     text,
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth_code (
    code_hash             text        PRIMARY KEY,
    client_id             text        NOT NULL REFERENCES auth_client ON DELETE CASCADE,
    username              text        NOT NULL REFERENCES auth_user ON DELETE CASCADE,
    redirect_uri          text        NOT NULL,
    scope                 text        NOT NULL,
    audience              text        NOT NULL,
    code_challenge        text,
    code_challenge_method text,
    nonce                 text,
    patient               text,
    encounter             text,
    auth_time             timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    used_at               timestamptz,
    -- the refresh token family issued from it (revoked if the code is used twice)
    family_id             uuid,
    access_jti            text
);
CREATE INDEX auth_code_expiry ON auth_code (expires_at);
CREATE INDEX auth_code_nonce ON auth_code (client_id, nonce) WHERE nonce IS NOT NULL;

CREATE TABLE auth_refresh_token (
    token_hash        text        PRIMARY KEY,
    -- every rotation of one grant shares the family; reuse of a used one revokes it all
    family_id         uuid        NOT NULL,
    client_id         text        NOT NULL REFERENCES auth_client ON DELETE CASCADE,
    username          text,
    scope             text        NOT NULL,
    audience          text        NOT NULL,
    patient           text,
    encounter         text,
    fhir_user         text,
    -- the access token issued together with this refresh token
    access_jti        text        NOT NULL,
    access_expires_at timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    used_at           timestamptz,
    revoked_at        timestamptz
);
CREATE INDEX auth_refresh_token_family ON auth_refresh_token (family_id);
CREATE INDEX auth_refresh_token_expiry ON auth_refresh_token (expires_at);

-- EHR launch: the context an EHR registered for a launch id (POST /auth/launch).
CREATE TABLE auth_launch (
    launch_id  text        PRIMARY KEY,
    patient    text,
    encounter  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- Backend services: the jti of every client assertion seen, until it expires.
CREATE TABLE auth_assertion_jti (
    client_id  text        NOT NULL,
    jti        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX auth_assertion_jti_expiry ON auth_assertion_jti (expires_at);

-- Random keys of the server itself (the login session cookie's HMAC key).
CREATE TABLE auth_secret (
    name       text        PRIMARY KEY,
    secret     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
