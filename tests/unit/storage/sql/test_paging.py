"""The SQL of pages walked along one date sort key (no database)."""

from __future__ import annotations

from psycopg import sql

from fhir_server.storage.sql.paging import SortKey, Walk, walked_page

WHERE = (sql.SQL("r.resource_type = %s"), ["Observation"])
ROW = sql.SQL("r.rid")


def _key(descending: bool, walk: bool = True) -> SortKey:
    return SortKey(sql.SQL("s0.v"), "timestamptz", descending, None,
                   Walk("idx_date", 7, "high" if descending else "low") if walk else None)


def test_first_page_walks_the_index_then_the_matches_without_a_value() -> None:
    statement = walked_page(WHERE, _key(True), ROW, 21, None, False)
    assert statement is not None
    text, params = statement[0].as_string(None), statement[1]
    assert text.startswith(
        'WITH "w" AS MATERIALIZED (SELECT r.rid, "ws"."high" AS k0 FROM "idx_date" "ws"'
        ' JOIN resource r ON r.rid = "ws".rid WHERE "ws".p = %s AND NOT EXISTS')
    # The row holding the resource's value: none further out, ties by ctid.
    assert ('("wt"."high" > "ws"."high" OR ("wt"."high" = "ws"."high"'
            ' AND "wt".ctid < "ws".ctid))') in text
    assert 'ORDER BY "ws"."high" DESC, r.rid ASC LIMIT %s)' in text
    # Matches without a value: only when the walk found fewer than the page.
    assert ('NULL::timestamptz AS k0 FROM resource r WHERE r.resource_type = %s AND NOT'
            ' EXISTS (SELECT 1 FROM "idx_date" "wn" WHERE "wn".rid = r.rid AND "wn".p = %s)'
            ' AND (SELECT count(*) FROM "w") < %s ORDER BY r.rid LIMIT %s') in text
    assert text.endswith("ORDER BY k.k0 DESC NULLS LAST, r.rid ASC LIMIT %s")
    assert params == [7, "Observation", 21, "Observation", 7, 21, 21, 21]
    assert text.count("%s") == len(params)


def test_after_a_cursor_the_walk_starts_at_its_value() -> None:
    statement = walked_page(WHERE, _key(False), ROW, 11, ["2020-01-01", 42], False)
    assert statement is not None
    text, params = statement[0].as_string(None), statement[1]
    assert '"ws"."low" >= %s::timestamptz AND ((("ws"."low" > %s::timestamptz' in text
    assert 'ORDER BY "ws"."low" ASC, r.rid ASC LIMIT %s)' in text
    assert params[:5] == [7, "Observation", "2020-01-01", "2020-01-01", "2020-01-01"]
    assert text.count("%s") == len(params)


def test_paging_back_has_no_branch_for_missing_values() -> None:
    statement = walked_page(WHERE, _key(True), ROW, 11, ["2020-01-01", 42], True)
    assert statement is not None
    text = statement[0].as_string(None)
    assert "NULL::" not in text
    assert '"ws"."high" >= %s::timestamptz' in text
    assert 'ORDER BY "ws"."high" ASC, r.rid DESC LIMIT %s)' in text
    assert text.endswith("ORDER BY k.k0 ASC NULLS FIRST, r.rid DESC LIMIT %s")


def test_not_walked() -> None:
    assert walked_page(WHERE, _key(True, walk=False), ROW, 11, None, False) is None
    # A cursor among the matches without a value, or back without a cursor: plain page.
    assert walked_page(WHERE, _key(True), ROW, 11, [None, 42], False) is None
    assert walked_page(WHERE, _key(True), ROW, 11, None, True) is None
