-- The audit trail's staging table: AuditEvents are first appended here (durably: a
-- logged table, one small row an event, no index but the primary key), in the write's
-- transaction or by the group-commit writer before the answer is sent; a background
-- mover then turns them into ordinary resources (fhir_audit_write of V8: resource,
-- resource_history and index rows) a few hundred at a time, within about a second.
--
-- event is the AuditEvent as the server built it, id included (json: kept as sent,
-- parsed once by the mover). A mover claims rows with DELETE ... FOR UPDATE SKIP LOCKED
-- and writes them in the same transaction, so each staged event becomes a resource
-- exactly once whatever the number of workers or replicas moving concurrently.
--
-- Expand-only: nothing existing changes; the previous release ignores the table.

CREATE TABLE audit_staging (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event     json        NOT NULL,
    staged_at timestamptz NOT NULL DEFAULT now()
);

-- Rows live for about a second: vacuum after a few thousand dead ones rather than after
-- a fifth of a table that is nearly always empty.
ALTER TABLE audit_staging SET (autovacuum_vacuum_scale_factor = 0,
                               autovacuum_vacuum_threshold = 5000,
                               autovacuum_vacuum_insert_scale_factor = 0,
                               autovacuum_vacuum_insert_threshold = 5000);
