-- A GiST index on the span of every idx_date row, for date searches bounded on both
-- sides (`date=ge..&date=lt..`, `date=2020-05-01`, `ap`): a btree on low or high reads
-- every row on one side of one bound (at 1M resources, all Encounters before the end of
-- a week), the span index about the matches. The compiler adds the condition this
-- index answers (`&&` with the search range, see fhir_server/storage/sql/date.py)
-- beside the exact conditions on low and high.
--
-- The span is closed and sorted (least, greatest), so no row can make the expression
-- fail and no span is empty. With btree_gist, `p` leads the index; without the
-- extension (the embedded PostgreSQL ships without contrib) the span alone is indexed
-- and `p` filters. Expand-only: an index; the previous release ignores it.
DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS btree_gist;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'btree_gist is not available: %', SQLERRM;
    END;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gist') THEN
        CREATE INDEX idx_date_span ON idx_date USING gist
            (p, tstzrange(least(low, high), greatest(low, high), '[]'));
    ELSE
        CREATE INDEX idx_date_span ON idx_date USING gist
            (tstzrange(least(low, high), greatest(low, high), '[]'));
    END IF;
END
$$;
