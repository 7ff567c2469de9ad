"""The SQL of pages walked along one date sort key (no database)."""

from __future__ import annotations

from psycopg import sql

from fhir_server.storage.sql.paging import WALK_ROWS, SortKey, Walk, walked_page

WHERE = (sql.SQL("r.resource_type = %s"), ["Observation"])
ROW = sql.SQL("r.rid")
PLAIN = (sql.SQL("SELECT plain WHERE y = %s"), ["x"])


def _key(descending: bool, walk: bool = True) -> SortKey:
    return SortKey(sql.SQL("s0.v"), "timestamptz", descending, None,
                   Walk("idx_date", 7, "high" if descending else "low") if walk else None)


def _page(descending: bool, cursor: list[object] | None = None) -> tuple[str, list[object]]:
    statement = walked_page(WHERE, _key(descending), ROW, 21, cursor, False, PLAIN)
    assert statement is not None
    return statement[0].as_string(None), statement[1]


def test_first_page_walks_a_bounded_run_of_index_rows() -> None:
    text, params = _page(True)
    assert text.startswith(
        'WITH w AS MATERIALIZED (SELECT r.rid, c."high" AS k0 FROM (SELECT DISTINCT'
        ' ws."high", ws.rid FROM "idx_date" ws WHERE ws.p = %s ORDER BY ws."high" DESC,'
        ' ws.rid DESC LIMIT %s) c JOIN resource r ON r.rid = c.rid WHERE'
        ' r.resource_type = %s')
    # The row holding the resource's value: none further out.
    assert ('NOT EXISTS (SELECT 1 FROM "idx_date" "wt" WHERE "wt".rid = c.rid AND'
            ' "wt".p = %s AND "wt"."high" > c."high")') in text
    assert 'ORDER BY c."high" DESC, r.rid ASC LIMIT %s)' in text
    # Done: a full page whose last value is inside the rows read; else the plain page.
    assert ('ok AS MATERIALIZED (SELECT count(*) = %s AND coalesce(min(k0) > (SELECT'
            ' c."high" FROM (SELECT DISTINCT') in text
    assert "OFFSET %s LIMIT 1), true) AS done FROM w)" in text
    assert ("FROM w WHERE (SELECT done FROM ok) UNION ALL SELECT f.rid, f.k0 FROM"
            " (SELECT plain WHERE y = %s) f WHERE NOT (SELECT done FROM ok)) k") in text
    assert text.endswith("ORDER BY k.k0 DESC NULLS LAST, r.rid ASC LIMIT %s")
    assert params == [7, WALK_ROWS, "Observation", 7, 21, 21, 7, WALK_ROWS - 1, "x", 21]
    assert text.count("%s") == len(params)


def test_after_a_cursor_the_walk_starts_at_its_value() -> None:
    text, params = _page(False, ["2020-01-01", 42])
    assert 'WHERE ws.p = %s AND ws."low" >= %s::timestamptz ORDER BY ws."low" ASC,' in text
    assert '(((c."low" > %s::timestamptz OR c."low" IS NULL)) OR (c."low" =' in text
    assert "coalesce(max(k0) < (SELECT" in text
    assert params[:3] == [7, "2020-01-01", WALK_ROWS]
    assert text.count("%s") == len(params)


def test_not_walked() -> None:
    assert walked_page(WHERE, _key(True, walk=False), ROW, 11, None, False, PLAIN) is None
    # Paging back, or a cursor among the matches without a value: the plain page.
    assert walked_page(WHERE, _key(True), ROW, 11, ["2020-01-01", 42], True, PLAIN) is None
    assert walked_page(WHERE, _key(True), ROW, 11, [None, 42], False, PLAIN) is None
