-- Leaner search index tables (about half of a database was index rows).
--
-- 1. idx_token loses `system`: no search reads it (every token form is a hash column;
--    :text reads `display`, _sort reads `code`). The server still sends it in the rows
--    it writes; fhir_write_index and the importer's COPY take the table's columns only.
-- 2. Indexes without `rid` after the key where no search could scan the index alone
--    anyway, or only rare ones: rows sharing a key then share one btree entry
--    (deduplication, a posting list of 6-byte row ids) instead of one 24-byte entry
--    each. Synthea-like data repeats its systems, composite keys, profiles and
--    reference targets (every Observation names its Patient and Encounter), so these
--    indexes shrink several times. `system|` (idx_token_sys), :of-type and composites read the
--    table's rows for `rid` (composites need low/high from them anyway); chains,
--    _has and reverse includes by target read a few rows each. idx_token_code and
--    idx_token_sys_code keep `rid`: without it a broad token search
--    (Observation?category=laboratory) fetched every matching row, 20x slower.
-- 3. Indexes no search uses go: idx_token_p (:missing finds rows by rid) and
--    idx_reference_p (includes and compartments look rows up by rid; chains and
--    reverse includes by target).
--
-- Contract (idx_token's columns change): oldest_compatible_code becomes 12.
-- Existing rows are copied into the new idx_token (a rewrite: the size of idx_token
-- once more on disk while it runs).

DROP INDEX idx_token_p;
DROP INDEX idx_reference_p;

CREATE TABLE idx_token_v12 (
    rid          bigint NOT NULL,
    p            bigint NOT NULL,
    h_code       bigint,          -- h64(p, code)                 `code`
    h_sys_code   bigint,          -- h64(p, system or '', code)    `system|code`, `|code`
    h_sys        bigint,          -- h64(p, system)                `system|`
    h_type_value bigint,          -- h64(p, type system, type code, value)  :of-type
    code         text,            -- for _sort
    display      text             -- normalized display/text, for :text
);
INSERT INTO idx_token_v12
SELECT rid, p, h_code, h_sys_code, h_sys, h_type_value, code, display FROM idx_token;
DROP TABLE idx_token;
ALTER TABLE idx_token_v12 RENAME TO idx_token;
CREATE INDEX idx_token_code ON idx_token (h_code, rid);
CREATE INDEX idx_token_sys_code ON idx_token (h_sys_code, rid);
CREATE INDEX idx_token_sys ON idx_token (h_sys) WHERE h_sys IS NOT NULL;
CREATE INDEX idx_token_type_value ON idx_token (h_type_value) WHERE h_type_value IS NOT NULL;
CREATE INDEX idx_token_rid ON idx_token (rid);
ANALYZE idx_token;

DROP INDEX idx_reference_target;
CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id, p);

DROP INDEX idx_composite_h1;
CREATE INDEX idx_composite_h1 ON idx_composite (h1);

-- _profile values (meta.profile) repeat on every resource of a profile.
DROP INDEX idx_uri_uri;
CREATE INDEX idx_uri_uri ON idx_uri (p, uri text_pattern_ops);

UPDATE schema_compatibility SET oldest_compatible_code = '12';

-- fhir_write_index of V5, without idx_token.system.
CREATE OR REPLACE FUNCTION fhir_write_index(p_rid bigint, p_index jsonb, p_replace boolean)
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
        DELETE FROM idx_text WHERE rid = p_rid;
    END IF;
    IF p_index IS NULL THEN
        RETURN;
    END IF;
    IF p_index ? 'token' THEN
        INSERT INTO idx_token
        SELECT p_rid, x.p, x.h_code, x.h_sys_code, x.h_sys, x.h_type_value, x.code,
               x.display
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
    IF p_index ? 'text' THEN
        INSERT INTO idx_text (rid, config, narrative_source, content_source)
        SELECT p_rid, x.config, x.narrative_source, x.content_source
          FROM jsonb_populate_recordset(NULL::idx_text, p_index -> 'text') x
         LIMIT 1;
    END IF;
END
$$;

-- fhir_audit_write of V11, without idx_token.system.
CREATE OR REPLACE FUNCTION fhir_audit_write(p_events jsonb) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    ts timestamptz := clock_timestamp();
    n  integer;
BEGIN
    WITH input AS (
        SELECT e ->> 'id' AS id, e -> 'index' AS idx,
               jsonb_set(e -> 'content' || jsonb_build_object('id', e ->> 'id'), '{meta}',
                         coalesce(e -> 'content' -> 'meta', '{}'::jsonb)
                         || jsonb_build_object('versionId', '1',
                                               'lastUpdated', fhir_instant(ts))) AS doc
          FROM jsonb_array_elements(p_events) e
    ), written AS (
        INSERT INTO resource (resource_type, id, version_id, last_updated, content)
        SELECT 'AuditEvent', i.id, 1, ts, i.doc FROM input i
        RETURNING resource.rid, resource.id, resource.content
    ), history AS (
        INSERT INTO resource_history (rid, resource_type, id, version_id, last_updated,
                                      method, content)
        SELECT w.rid, 'AuditEvent', w.id, 1, ts, 'POST', NULL FROM written w
    ), rows AS (
        SELECT w.rid, i.idx FROM written w JOIN input i ON i.id = w.id
    ), tokens AS (
        INSERT INTO idx_token
        SELECT r.rid, x.p, x.h_code, x.h_sys_code, x.h_sys, x.h_type_value, x.code,
               x.display
          FROM rows r, jsonb_populate_recordset(NULL::idx_token, r.idx -> 'token') x
    ), strings AS (
        INSERT INTO idx_string
        SELECT r.rid, x.p, x.norm, x.exact
          FROM rows r, jsonb_populate_recordset(NULL::idx_string, r.idx -> 'string') x
    ), dates AS (
        INSERT INTO idx_date
        SELECT r.rid, x.p, x.low, x.high
          FROM rows r, jsonb_populate_recordset(NULL::idx_date, r.idx -> 'date') x
    ), numbers AS (
        INSERT INTO idx_number
        SELECT r.rid, x.p, x.low, x.high
          FROM rows r, jsonb_populate_recordset(NULL::idx_number, r.idx -> 'number') x
    ), quantities AS (
        INSERT INTO idx_quantity
        SELECT r.rid, x.p, x.system, x.code, x.unit, x.low, x.high
          FROM rows r, jsonb_populate_recordset(NULL::idx_quantity, r.idx -> 'quantity') x
    ), refs AS (
        INSERT INTO idx_reference
        SELECT r.rid, x.p, x.target_type, x.target_id, x.version, x.url
          FROM rows r, jsonb_populate_recordset(NULL::idx_reference, r.idx -> 'reference') x
    ), uris AS (
        INSERT INTO idx_uri
        SELECT r.rid, x.p, x.uri
          FROM rows r, jsonb_populate_recordset(NULL::idx_uri, r.idx -> 'uri') x
    ), composites AS (
        INSERT INTO idx_composite
        SELECT r.rid, x.p, x.h1, x.h2, x.low, x.high, x.dlow, x.dhigh
          FROM rows r, jsonb_populate_recordset(NULL::idx_composite, r.idx -> 'composite') x
    ), texts AS (
        INSERT INTO idx_text (rid, config, narrative_source, content_source)
        SELECT DISTINCT ON (r.rid) r.rid, x.config, x.narrative_source, x.content_source
          FROM rows r, jsonb_populate_recordset(NULL::idx_text, r.idx -> 'text') x
         ORDER BY r.rid
    )
    SELECT count(*) INTO n FROM written;
    RETURN n;
END
$$;
