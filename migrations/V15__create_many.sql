-- fhir_create_many: many new resources in one statement, for `fhir-server import`.
--
-- What `fhir_write` (V11) does for a PUT or POST of an id that does not exist, set-based:
-- version 1, lastUpdated from the database clock (clock_timestamp(), one per resource),
-- the body with the id given and meta.versionId/lastUpdated stamped in, the resource row
-- and a history row without body (V11: the current version's body is in `resource`
-- only). One statement instead of a plpgsql call per resource (the lock-and-read, the
-- meta handling and three statements each). Index rows are not written here: the
-- importer COPYs them afterwards, as it does after `fhir_write`.
--
-- Ids that exist (also deleted ones) or repeat in the arrays are left out (ON CONFLICT
-- DO NOTHING also covers a concurrent transaction that created the same id): the
-- caller sends those to `fhir_write`. Answers one row (ord, rid, last_updated) per
-- resource created, ord being the 1-based position in the arrays.
-- Rows are inserted in array order, so rid and hid grow as they would with one
-- `fhir_write` call after the other.
--
-- Expand-only: a new function; the previous release does not call it.

CREATE FUNCTION fhir_create_many(p_types text[], p_ids text[], p_contents text[],
                                 p_methods text[])
    RETURNS TABLE (ord integer, rid bigint, last_updated timestamptz)
    LANGUAGE sql
    AS $$
    WITH input AS MATERIALIZED (
        -- The first occurrence of each key that is not stored yet; the body is only
        -- parsed for those (a second import finds every id present).
        SELECT DISTINCT ON (u.t, u.i) u.o::integer AS o, u.t, u.i, u.m,
               clock_timestamp() AS ts,
               fhir_strip_meta(u.c::jsonb) || jsonb_build_object('id', u.i) AS doc
          FROM unnest(p_types, p_ids, p_contents, p_methods) WITH ORDINALITY
               AS u(t, i, c, m, o)
         WHERE u.m IN ('PUT', 'POST')
           AND NOT EXISTS (SELECT 1 FROM resource r
                            WHERE r.resource_type = u.t AND r.id = u.i)
         ORDER BY u.t, u.i, u.o
    ), written AS (
        INSERT INTO resource (resource_type, id, version_id, last_updated, content)
        SELECT i.t, i.i, 1, i.ts,
               jsonb_set(i.doc, '{meta}',
                         coalesce(i.doc -> 'meta', '{}'::jsonb)
                         || jsonb_build_object('versionId', '1',
                                               'lastUpdated', fhir_instant(i.ts)))
          FROM input i
         ORDER BY i.o
        ON CONFLICT ON CONSTRAINT resource_type_id_key DO NOTHING
        RETURNING resource.rid, resource.resource_type, resource.id, resource.last_updated
    ), joined AS MATERIALIZED (
        SELECT i.o, w.rid, w.resource_type, w.id, w.last_updated, i.m
          FROM written w JOIN input i ON i.t = w.resource_type AND i.i = w.id
    ), history AS (
        INSERT INTO resource_history (rid, resource_type, id, version_id, last_updated,
                                      method, content)
        SELECT j.rid, j.resource_type, j.id, 1, j.last_updated, j.m, NULL
          FROM joined j
         ORDER BY j.o
    )
    SELECT j.o, j.rid, j.last_updated FROM joined j ORDER BY j.o
    $$;
