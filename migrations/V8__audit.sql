-- The audit trail: AuditEvents the server records about every /fhir request, stored as
-- ordinary resources (resource, resource_history and index rows, so the standard
-- AuditEvent search parameters find them), many per statement.
--
-- p_events is a JSON array of {"id": text, "content": AuditEvent, "index": rows as
-- fhir_write_index takes them}. Each event is version 1 of a new id (a server-made UUID),
-- so there is no current row to lock, no If-Match and no no-op check: that is what makes
-- one set-based statement per batch possible (fhir_write does the same per resource).
-- meta.versionId and meta.lastUpdated are stamped as fhir_write stamps them.
--
-- Expand-only: nothing existing changes; the previous release ignores the function.

CREATE FUNCTION fhir_audit_write(p_events jsonb) RETURNS integer
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
        SELECT w.rid, 'AuditEvent', w.id, 1, ts, 'POST', w.content FROM written w
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
