-- Versioned FHIR resource store.
--
-- `resource` holds exactly one row per (type, id): the current version, or a tombstone
-- after a delete, so that reads and searches never touch history. `resource_history`
-- holds every version, current included, for vread and _history. Index tables for
-- search parameters reference `resource.rid` and are written in the same transaction.

CREATE TABLE resource (
    rid           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_type text        NOT NULL,
    id            text        NOT NULL,
    version_id    integer     NOT NULL,
    last_updated  timestamptz NOT NULL,
    deleted       boolean     NOT NULL DEFAULT false,
    content       jsonb,
    CONSTRAINT resource_type_id_key UNIQUE (resource_type, id),
    CONSTRAINT resource_content_present CHECK (deleted OR content IS NOT NULL)
);

CREATE INDEX resource_type_updated_idx ON resource (resource_type, last_updated);

CREATE TABLE resource_history (
    -- hid orders versions globally (ties in last_updated across resources).
    hid           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rid           bigint      NOT NULL,
    resource_type text        NOT NULL,
    id            text        NOT NULL,
    version_id    integer     NOT NULL,
    last_updated  timestamptz NOT NULL,
    method        text        NOT NULL CHECK (method IN ('POST', 'PUT', 'PATCH', 'DELETE')),
    content       jsonb,
    CONSTRAINT resource_history_version_key UNIQUE (resource_type, id, version_id)
);

CREATE INDEX resource_history_updated_idx ON resource_history (last_updated, hid);
CREATE INDEX resource_history_type_updated_idx
    ON resource_history (resource_type, last_updated, hid);

-- FHIR instant text for a timestamp, always UTC with microseconds, so that the value in
-- meta.lastUpdated round-trips exactly through _since and _at.
CREATE FUNCTION fhir_instant(ts timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- A resource without the server-maintained meta fields, for no-op update detection.
CREATE FUNCTION fhir_strip_meta(doc jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN (doc -> 'meta') - 'versionId' - 'lastUpdated' = '{}'::jsonb THEN doc - 'meta'
        ELSE doc #- '{meta,versionId}' #- '{meta,lastUpdated}'
    END
    $$;

-- One write of one resource in one statement: lock the current row, check If-Match,
-- assign versionId and lastUpdated from the database clock (never going backwards for a
-- resource), stamp them into meta, and write current and history rows.
--   p_method: POST (create, id must be new), PUT or PATCH (update or create), DELETE.
--   outcome: created | updated | unchanged (identical content, no new version)
--            | deleted | absent (delete of a missing or already deleted resource).
-- Errors use SQLSTATE FH409 (conflict) and FH412 (precondition failed); the storage
-- layer maps them to HTTP statuses.
CREATE FUNCTION fhir_write(p_type text, p_id text, p_content jsonb, p_method text,
                           p_if_match integer DEFAULT NULL)
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
    RETURN QUERY SELECT cur.rid, ver, ts,
                        CASE WHEN present AND NOT cur.deleted THEN 'updated' ELSE 'created' END,
                        doc::text;
END
$$;
