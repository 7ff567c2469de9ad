-- Background jobs ($reindex; later bulk export) and the build state of search
-- parameters defined through the API.

CREATE TABLE job (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text        NOT NULL,
    params      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status      text        NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    -- resume point: the last resource.rid processed
    cursor      bigint      NOT NULL DEFAULT 0,
    processed   bigint      NOT NULL DEFAULT 0,
    total       bigint,
    error       text,
    -- a running job whose lease expired is taken over by another worker
    lease_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_claim_idx ON job (status, id) WHERE status IN ('queued', 'running');

-- A SearchParameter stored through the API is indexed on every write at once, but it
-- is only served by search once a $reindex covering it has finished ('active').
CREATE TABLE search_param_state (
    url        text        PRIMARY KEY,
    status     text        NOT NULL CHECK (status IN ('building', 'active')),
    job_id     bigint,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX resource_type_rid_idx ON resource (resource_type, rid) WHERE NOT deleted;
