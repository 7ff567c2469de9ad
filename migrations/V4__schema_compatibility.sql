-- Which releases may run against this schema. A server refuses a database whose
-- migrations are ahead of its own files, unless its newest migration is at least
-- `oldest_compatible_code`. A backward-compatible migration (expand: new tables,
-- nullable columns, new indexes) leaves the value alone, so the previous release keeps
-- running after it and `helm rollback` is safe; a migration that breaks older code
-- (contract: drops, renames) sets it to its own version.
CREATE TABLE schema_compatibility (
    only_row               boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    oldest_compatible_code text    NOT NULL
);
INSERT INTO schema_compatibility (oldest_compatible_code) VALUES ('4');
