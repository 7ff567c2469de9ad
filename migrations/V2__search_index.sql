-- Search-parameter index tables, one per parameter type, for current versions only.
--
-- Every row carries `rid` (resource.rid) and `p`, a 64-bit hash of (resource type,
-- parameter code) computed by fhir_server.search.hashing. Token-like keys are hashed
-- together with `p`, so one single-column btree answers a token search.
-- Rows are written by fhir_write (below) in the same transaction as the resource.

-- pg_trgm speeds up :contains; where the extension is unavailable (the embedded
-- PostgreSQL ships without contrib) :contains still works, with a scan.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available: %', SQLERRM;
END
$$;

CREATE TABLE idx_token (
    rid          bigint NOT NULL,
    p            bigint NOT NULL,
    h_code       bigint,          -- h64(p, code)                 `code`
    h_sys_code   bigint,          -- h64(p, system or '', code)    `system|code`, `|code`
    h_sys        bigint,          -- h64(p, system)                `system|`
    h_type_value bigint,          -- h64(p, type system, type code, value)  :of-type
    system       text,
    code         text,
    display      text             -- normalized display/text, for :text
);
CREATE INDEX idx_token_code ON idx_token (h_code, rid);
CREATE INDEX idx_token_sys_code ON idx_token (h_sys_code, rid);
CREATE INDEX idx_token_sys ON idx_token (h_sys, rid) WHERE h_sys IS NOT NULL;
CREATE INDEX idx_token_type_value ON idx_token (h_type_value, rid)
    WHERE h_type_value IS NOT NULL;
CREATE INDEX idx_token_p ON idx_token (p, rid);
CREATE INDEX idx_token_rid ON idx_token (rid);

CREATE TABLE idx_string (
    rid   bigint NOT NULL,
    p     bigint NOT NULL,
    norm  text   NOT NULL,        -- case- and accent-folded
    exact text   NOT NULL
);
CREATE INDEX idx_string_norm ON idx_string (p, norm text_pattern_ops, rid);
CREATE INDEX idx_string_exact ON idx_string (p, exact, rid);
CREATE INDEX idx_string_rid ON idx_string (rid);

CREATE TABLE idx_date (
    rid  bigint      NOT NULL,
    p    bigint      NOT NULL,
    low  timestamptz NOT NULL,    -- inclusive; -infinity when open
    high timestamptz NOT NULL     -- exclusive; infinity when open
);
CREATE INDEX idx_date_low ON idx_date (p, low, rid);
CREATE INDEX idx_date_high ON idx_date (p, high, rid);
CREATE INDEX idx_date_rid ON idx_date (rid);

CREATE TABLE idx_number (
    rid  bigint  NOT NULL,
    p    bigint  NOT NULL,
    low  numeric NOT NULL,        -- equal to high for a plain number
    high numeric NOT NULL
);
CREATE INDEX idx_number_low ON idx_number (p, low, rid);
CREATE INDEX idx_number_rid ON idx_number (rid);

CREATE TABLE idx_quantity (
    rid    bigint NOT NULL,
    p      bigint NOT NULL,
    system text,
    code   text,
    unit   text,
    low    numeric,               -- equal to high for a plain Quantity
    high   numeric
);
CREATE INDEX idx_quantity_code ON idx_quantity (p, code, low, rid);
CREATE INDEX idx_quantity_low ON idx_quantity (p, low, rid);
CREATE INDEX idx_quantity_rid ON idx_quantity (rid);

CREATE TABLE idx_reference (
    rid         bigint NOT NULL,
    p           bigint NOT NULL,
    target_type text,             -- local references: type and id
    target_id   text,
    version     text,             -- a versioned reference's version, if any
    url         text              -- absolute (non-local) and canonical references
);
CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id, p, rid);
CREATE INDEX idx_reference_url ON idx_reference (p, url, rid) WHERE url IS NOT NULL;
CREATE INDEX idx_reference_p ON idx_reference (p, rid);
CREATE INDEX idx_reference_rid ON idx_reference (rid);

CREATE TABLE idx_uri (
    rid bigint NOT NULL,
    p   bigint NOT NULL,
    uri text   NOT NULL
);
CREATE INDEX idx_uri_uri ON idx_uri (p, uri text_pattern_ops, rid);
CREATE INDEX idx_uri_rid ON idx_uri (rid);

CREATE TABLE idx_composite (
    rid   bigint NOT NULL,
    p     bigint NOT NULL,
    h1    bigint NOT NULL,        -- first component (a token) hashed with p
    h2    bigint,                 -- second component when a token (or string)
    low   numeric,                -- second component when a number or quantity
    high  numeric,
    dlow  timestamptz,            -- second component when a date
    dhigh timestamptz
);
CREATE INDEX idx_composite_h1 ON idx_composite (h1, rid);
CREATE INDEX idx_composite_rid ON idx_composite (rid);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX idx_string_trgm ON idx_string USING gin (norm gin_trgm_ops);
    END IF;
END
$$;

-- Replace the index rows of one resource. p_index maps a table name without the idx_
-- prefix (token, string, ...) to a JSON array of row objects keyed by column name.
CREATE FUNCTION fhir_write_index(p_rid bigint, p_index jsonb, p_replace boolean)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF p_replace THEN
        DELETE FROM idx_token WHERE rid = p_rid;
        DELETE FROM idx_string WHERE rid = p_rid;
        DELETE FROM idx_date WHERE rid = p_rid;
        DELETE FROM idx_number WHERE rid = p_rid;
        DELETE FROM idx_quantity WHERE rid = p_rid;
        DELETE FROM idx_reference WHERE rid = p_rid;
        DELETE FROM idx_uri WHERE rid = p_rid;
        DELETE FROM idx_composite WHERE rid = p_rid;
    END IF;
    IF p_index IS NULL THEN
        RETURN;
    END IF;
    IF p_index ? 'token' THEN
        INSERT INTO idx_token
        SELECT p_rid, x.p, x.h_code, x.h_sys_code, x.h_sys, x.h_type_value, x.system,
               x.code, x.display
          FROM jsonb_populate_recordset(NULL::idx_token, p_index -> 'token') x;
    END IF;
    IF p_index ? 'string' THEN
        INSERT INTO idx_string
        SELECT p_rid, x.p, x.norm, x.exact
          FROM jsonb_populate_recordset(NULL::idx_string, p_index -> 'string') x;
    END IF;
    IF p_index ? 'date' THEN
        INSERT INTO idx_date
        SELECT p_rid, x.p, x.low, x.high
          FROM jsonb_populate_recordset(NULL::idx_date, p_index -> 'date') x;
    END IF;
    IF p_index ? 'number' THEN
        INSERT INTO idx_number
        SELECT p_rid, x.p, x.low, x.high
          FROM jsonb_populate_recordset(NULL::idx_number, p_index -> 'number') x;
    END IF;
    IF p_index ? 'quantity' THEN
        INSERT INTO idx_quantity
        SELECT p_rid, x.p, x.system, x.code, x.unit, x.low, x.high
          FROM jsonb_populate_recordset(NULL::idx_quantity, p_index -> 'quantity') x;
    END IF;
    IF p_index ? 'reference' THEN
        INSERT INTO idx_reference
        SELECT p_rid, x.p, x.target_type, x.target_id, x.version, x.url
          FROM jsonb_populate_recordset(NULL::idx_reference, p_index -> 'reference') x;
    END IF;
    IF p_index ? 'uri' THEN
        INSERT INTO idx_uri
        SELECT p_rid, x.p, x.uri
          FROM jsonb_populate_recordset(NULL::idx_uri, p_index -> 'uri') x;
    END IF;
    IF p_index ? 'composite' THEN
        INSERT INTO idx_composite
        SELECT p_rid, x.p, x.h1, x.h2, x.low, x.high, x.dlow, x.dhigh
          FROM jsonb_populate_recordset(NULL::idx_composite, p_index -> 'composite') x;
    END IF;
END
$$;

-- fhir_write gains p_index: the index rows are written in the same statement.
DROP FUNCTION fhir_write(text, text, jsonb, text, integer);

-- One write of one resource in one statement: lock the current row, check If-Match,
-- assign versionId and lastUpdated from the database clock (never going backwards for a
-- resource), stamp them into meta, and write current and history rows.
--   p_method: POST (create, id must be new), PUT or PATCH (update or create), DELETE.
--   outcome: created | updated | unchanged (identical content, no new version)
--            | deleted | absent (delete of a missing or already deleted resource).
-- p_index: the new version's search index rows (see fhir_write_index).
-- Errors use SQLSTATE FH409 (conflict) and FH412 (precondition failed); the storage
-- layer maps them to HTTP statuses.
CREATE FUNCTION fhir_write(p_type text, p_id text, p_content jsonb, p_method text,
                           p_if_match integer DEFAULT NULL, p_index jsonb DEFAULT NULL)
    RETURNS TABLE (rid bigint, version_id integer, last_updated timestamptz,
                   outcome text, content text)
    LANGUAGE plpgsql
    AS $$
DECLARE
    cur   resource%ROWTYPE;
    present boolean;
    ts    timestamptz;
    ver   integer;
    doc   jsonb;
BEGIN
    SELECT r.* INTO cur FROM resource r
     WHERE r.resource_type = p_type AND r.id = p_id FOR UPDATE;
    present := FOUND;

    IF p_if_match IS NOT NULL
       AND (NOT present OR cur.deleted OR cur.version_id <> p_if_match) THEN
        RAISE EXCEPTION USING ERRCODE = 'FH412',
            MESSAGE = format('If-Match version %s is not the current version of %s/%s',
                             p_if_match, p_type, p_id);
    END IF;

    IF p_method = 'DELETE' THEN
        IF NOT present OR cur.deleted THEN
            RETURN QUERY SELECT cur.rid, cur.version_id, cur.last_updated, 'absent'::text,
                                NULL::text;
            RETURN;
        END IF;
        ts := greatest(clock_timestamp(), cur.last_updated + interval '1 microsecond');
        ver := cur.version_id + 1;
        UPDATE resource r SET version_id = ver, last_updated = ts, deleted = true,
                              content = NULL
         WHERE r.rid = cur.rid;
        PERFORM fhir_write_index(cur.rid, NULL, true);
        INSERT INTO resource_history (rid, resource_type, id, version_id, last_updated,
                                      method, content)
             VALUES (cur.rid, p_type, p_id, ver, ts, 'DELETE', NULL);
        RETURN QUERY SELECT cur.rid, ver, ts, 'deleted'::text, NULL::text;
        RETURN;
    END IF;

    IF p_method = 'POST' AND present THEN
        RAISE EXCEPTION USING ERRCODE = 'FH409',
            MESSAGE = format('%s/%s already exists', p_type, p_id);
    END IF;

    -- The body is stored as the client sent it (numbers keep their precision), with
    -- the id of the URL and without the meta fields the server assigns.
    doc := fhir_strip_meta(p_content) || jsonb_build_object('id', p_id);
    IF present AND NOT cur.deleted AND fhir_strip_meta(cur.content) = doc THEN
        RETURN QUERY SELECT cur.rid, cur.version_id, cur.last_updated, 'unchanged'::text,
                            cur.content::text;
        RETURN;
    END IF;

    IF present THEN
        ts := greatest(clock_timestamp(), cur.last_updated + interval '1 microsecond');
        ver := cur.version_id + 1;
    ELSE
        ts := clock_timestamp();
        ver := 1;
    END IF;
    doc := jsonb_set(doc, '{meta}',
                     coalesce(doc -> 'meta', '{}'::jsonb)
                     || jsonb_build_object('versionId', ver::text,
                                           'lastUpdated', fhir_instant(ts)));
    IF present THEN
        UPDATE resource r SET version_id = ver, last_updated = ts, deleted = false,
                              content = doc
         WHERE r.rid = cur.rid;
    ELSE
        INSERT INTO resource (resource_type, id, version_id, last_updated, content)
             VALUES (p_type, p_id, ver, ts, doc)
        ON CONFLICT ON CONSTRAINT resource_type_id_key DO NOTHING
        RETURNING resource.rid INTO cur.rid;
        IF cur.rid IS NULL THEN
            -- A concurrent transaction created the same id first.
            RAISE EXCEPTION USING ERRCODE = 'FH409',
                MESSAGE = format('%s/%s was created concurrently', p_type, p_id);
        END IF;
    END IF;
    INSERT INTO resource_history (rid, resource_type, id, version_id, last_updated,
                                  method, content)
         VALUES (cur.rid, p_type, p_id, ver, ts, p_method, doc);
    -- A new resource has no rows yet; a revived or updated one replaces its rows.
    PERFORM fhir_write_index(cur.rid, p_index, present);
    RETURN QUERY SELECT cur.rid, ver, ts,
                        CASE WHEN present AND NOT cur.deleted THEN 'updated' ELSE 'created' END,
                        doc::text;
END
$$;
