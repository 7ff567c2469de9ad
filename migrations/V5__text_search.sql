-- Full-text search for _text (the narrative) and _content (the resource's text): one
-- row per current resource, written by fhir_write_index with the other index rows (and
-- deleted with them). fhir_server.search.text says what text each part holds.
--
-- The server sends the text as `narrative_source` / `content_source` with the text
-- search configuration (`config`, SEARCH_TEXT_LANGUAGE); the trigger below turns them
-- into tsvectors and empties them, so the text itself is not stored twice and a COPY
-- of the same columns (fhir-server import) stores the same rows. `config` is text, not
-- regconfig: pg_upgrade refuses tables with reg* columns other than regclass/regtype.
--
-- Expand-only: the previous release keeps running on this schema (it writes no
-- idx_text rows). Resources written before this migration have no row until a
-- `$reindex` (POST [base]/$reindex, or per type) has run: until then _text and _content
-- do not find them. _text:missing reads the resource itself and is right at once.

CREATE TABLE idx_text (
    rid              bigint   PRIMARY KEY REFERENCES resource (rid),
    config           text     NOT NULL,   -- text search configuration of both vectors
    narrative        tsvector,            -- text.div without markup; NULL: no narrative
    content          tsvector,            -- readable strings of the resource
    narrative_source text,                -- input only, always NULL once stored
    content_source   text                 -- input only, always NULL once stored
);
CREATE INDEX idx_text_narrative ON idx_text USING gin (narrative);
CREATE INDEX idx_text_content ON idx_text USING gin (content);

CREATE FUNCTION fhir_text_vectors() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.narrative_source IS NOT NULL THEN
        NEW.narrative := to_tsvector(NEW.config::regconfig, NEW.narrative_source);
    END IF;
    IF NEW.content_source IS NOT NULL THEN
        NEW.content := to_tsvector(NEW.config::regconfig, NEW.content_source);
    END IF;
    NEW.narrative_source := NULL;
    NEW.content_source := NULL;
    RETURN NEW;
END
$$;

CREATE TRIGGER idx_text_vectors BEFORE INSERT OR UPDATE ON idx_text
    FOR EACH ROW EXECUTE FUNCTION fhir_text_vectors();

-- fhir_write_index of V2, with idx_text (`text` in p_index: one row object).
CREATE OR REPLACE FUNCTION fhir_write_index(p_rid bigint, p_index jsonb, p_replace boolean)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF p_replace THEN
        DELETE FROM idx_token WHERE rid = p_rid;
        DELETE FROM idx_string WHERE rid = p_rid;
        DELETE FROM idx_date WHERE rid = p_rid;
        DELETE FROM idx_number WHERE rid = p_rid;
        DELETE FROM idx_quantity WHERE rid = p_rid;
        DELETE FROM idx_reference WHERE rid = p_rid;
        DELETE FROM idx_uri WHERE rid = p_rid;
        DELETE FROM idx_composite WHERE rid = p_rid;
        DELETE FROM idx_text WHERE rid = p_rid;
    END IF;
    IF p_index IS NULL THEN
        RETURN;
    END IF;
    IF p_index ? 'token' THEN
        INSERT INTO idx_token
        SELECT p_rid, x.p, x.h_code, x.h_sys_code, x.h_sys, x.h_type_value, x.system,
               x.code, x.display
          FROM jsonb_populate_recordset(NULL::idx_token, p_index -> 'token') x;
    END IF;
    IF p_index ? 'string' THEN
        INSERT INTO idx_string
        SELECT p_rid, x.p, x.norm, x.exact
          FROM jsonb_populate_recordset(NULL::idx_string, p_index -> 'string') x;
    END IF;
    IF p_index ? 'date' THEN
        INSERT INTO idx_date
        SELECT p_rid, x.p, x.low, x.high
          FROM jsonb_populate_recordset(NULL::idx_date, p_index -> 'date') x;
    END IF;
    IF p_index ? 'number' THEN
        INSERT INTO idx_number
        SELECT p_rid, x.p, x.low, x.high
          FROM jsonb_populate_recordset(NULL::idx_number, p_index -> 'number') x;
    END IF;
    IF p_index ? 'quantity' THEN
        INSERT INTO idx_quantity
        SELECT p_rid, x.p, x.system, x.code, x.unit, x.low, x.high
          FROM jsonb_populate_recordset(NULL::idx_quantity, p_index -> 'quantity') x;
    END IF;
    IF p_index ? 'reference' THEN
        INSERT INTO idx_reference
        SELECT p_rid, x.p, x.target_type, x.target_id, x.version, x.url
          FROM jsonb_populate_recordset(NULL::idx_reference, p_index -> 'reference') x;
    END IF;
    IF p_index ? 'uri' THEN
        INSERT INTO idx_uri
        SELECT p_rid, x.p, x.uri
          FROM jsonb_populate_recordset(NULL::idx_uri, p_index -> 'uri') x;
    END IF;
    IF p_index ? 'composite' THEN
        INSERT INTO idx_composite
        SELECT p_rid, x.p, x.h1, x.h2, x.low, x.high, x.dlow, x.dhigh
          FROM jsonb_populate_recordset(NULL::idx_composite, p_index -> 'composite') x;
    END IF;
    IF p_index ? 'text' THEN
        INSERT INTO idx_text (rid, config, narrative_source, content_source)
        SELECT p_rid, x.config, x.narrative_source, x.content_source
          FROM jsonb_populate_recordset(NULL::idx_text, p_index -> 'text') x
         LIMIT 1;
    END IF;
END
$$;
