-- Index pages filled to 100 % when an index is built or rebuilt (REINDEX), instead of
-- the default 90 %, on the tables that only grow or lose whole rows: the search index
-- tables and resource_history. Their rows are never updated in place (a write deletes
-- a resource's index rows and inserts new ones), so the 10 % a btree leaf keeps free for
-- later insertions between its keys buys little: most of these indexes are keyed by
-- hashes or ids, where a bulk load splits pages in halves anyway (~70 % full), and
-- `fhir-server import` then rebuilds the tables it grew (storage/repack.py), which
-- packs them at this fillfactor. `resource` keeps the default: its rows are updated.
-- GIN indexes (idx_text, idx_string_trgm) have no fillfactor.
--
-- Expand-only: storage parameters, no row changes; nothing is rebuilt here (a rebuild
-- locks writes for minutes on a large database). To pack an existing database run
-- `REINDEX TABLE CONCURRENTLY` on each idx_* table and resource_history (see README
-- "Migrations").

ALTER INDEX idx_token_code SET (fillfactor = 100);
ALTER INDEX idx_token_sys_code SET (fillfactor = 100);
ALTER INDEX idx_token_sys SET (fillfactor = 100);
ALTER INDEX idx_token_type_value SET (fillfactor = 100);
ALTER INDEX idx_token_rid SET (fillfactor = 100);
ALTER INDEX idx_string_norm SET (fillfactor = 100);
ALTER INDEX idx_string_exact SET (fillfactor = 100);
ALTER INDEX idx_string_rid SET (fillfactor = 100);
ALTER INDEX idx_date_low SET (fillfactor = 100);
ALTER INDEX idx_date_high SET (fillfactor = 100);
ALTER INDEX idx_date_rid SET (fillfactor = 100);
ALTER INDEX IF EXISTS idx_date_span SET (fillfactor = 100);
ALTER INDEX idx_number_low SET (fillfactor = 100);
ALTER INDEX idx_number_rid SET (fillfactor = 100);
ALTER INDEX idx_quantity_code SET (fillfactor = 100);
ALTER INDEX idx_quantity_low SET (fillfactor = 100);
ALTER INDEX idx_quantity_rid SET (fillfactor = 100);
ALTER INDEX idx_reference_target SET (fillfactor = 100);
ALTER INDEX idx_reference_url SET (fillfactor = 100);
ALTER INDEX idx_reference_rid SET (fillfactor = 100);
ALTER INDEX idx_uri_uri SET (fillfactor = 100);
ALTER INDEX idx_uri_rid SET (fillfactor = 100);
ALTER INDEX idx_composite_h1 SET (fillfactor = 100);
ALTER INDEX idx_composite_rid SET (fillfactor = 100);
ALTER INDEX idx_text_pkey SET (fillfactor = 100);
ALTER INDEX resource_history_pkey SET (fillfactor = 100);
ALTER INDEX resource_history_version_key SET (fillfactor = 100);
ALTER INDEX resource_history_updated_idx SET (fillfactor = 100);
ALTER INDEX resource_history_type_updated_idx SET (fillfactor = 100);
