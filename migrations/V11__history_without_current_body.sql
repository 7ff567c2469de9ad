-- A version's body is stored once. `resource` keeps the current version's body;
-- `resource_history` keeps a row for every version (vread, _history, _at) but the body
-- only of superseded versions: a write moves the body it replaces from `resource` into
-- that version's history row. A history row with no body and a method other than
-- DELETE is the current version: readers take its body from `resource` (same rid).
--
-- Bodies are stored with lz4 where this PostgreSQL build has it (faster to decompress
-- than pglz; TOAST compresses only values of rows over ~2 kB, whatever the setting).
--
-- Contract: the previous release reads history bodies from resource_history alone, so
-- this migration sets oldest_compatible_code to 11.
--
-- Existing data: the bodies of current versions are emptied in resource_history. The
-- space comes back to PostgreSQL for new rows at once (after autovacuum); to give it
-- back to the file system run `VACUUM FULL resource_history` in a maintenance window.

DO $$
BEGIN
    ALTER TABLE resource ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE resource_history ALTER COLUMN content SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 is not available, bodies stay pglz-compressed: %', SQLERRM;
END
$$;

UPDATE resource_history h SET content = NULL
  FROM resource r
 WHERE r.rid = h.rid AND r.version_id = h.version_id AND NOT r.deleted
   AND h.content IS NOT NULL;

UPDATE schema_compatibility SET oldest_compatible_code = '11';

CREATE OR REPLACE FUNCTION fhir_write(p_type text, p_id text, p_content jsonb, p_method text,
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
        -- The superseded version's body moves from resource into its history row.
        UPDATE resource_history h SET content = cur.content
         WHERE h.resource_type = p_type AND h.id = p_id AND h.version_id = cur.version_id;
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
        IF NOT cur.deleted THEN
            -- The superseded version's body moves from resource into its history row
            -- (a deleted one has none).
            UPDATE resource_history h SET content = cur.content
             WHERE h.resource_type = p_type AND h.id = p_id
               AND h.version_id = cur.version_id;
        END IF;
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
    -- The current version's body is in resource only: its history row has none.
    INSERT INTO resource_history (rid, resource_type, id, version_id, last_updated,
                                  method, content)
         VALUES (cur.rid, p_type, p_id, ver, ts, p_method, NULL);
    -- A new resource has no rows yet; a revived or updated one replaces its rows.
    PERFORM fhir_write_index(cur.rid, p_index, present);
    RETURN QUERY SELECT cur.rid, ver, ts,
                        CASE WHEN present AND NOT cur.deleted THEN 'updated' ELSE 'created' END,
                        doc::text;
END
$$;

-- fhir_audit_write of V8: the new events' history rows carry no body.
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
        SELECT r.rid, x.p, x.h_code, x.h_sys_code, x.h_sys, x.h_type_value, x.system,
               x.code, x.display
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
