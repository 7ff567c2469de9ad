-- At most one active (queued or running) job of a kind per scope: a second $reindex of
-- the same scope answers with the active one instead of queuing another. scope is what
-- a job covers ('system', or the one resource type); the partial unique index makes the
-- database the judge, so two replicas starting one at the same moment leave one job.
--
-- Expand-only: a nullable column and an index. Jobs queued by the previous release
-- (scope NULL) are not constrained; it ignores the column.

ALTER TABLE job ADD COLUMN scope text;
CREATE UNIQUE INDEX job_active_scope_idx ON job (kind, scope)
    WHERE status IN ('queued', 'running') AND scope IS NOT NULL;
