"""CAP: rows and bytes are capped while streaming, exactly, whatever the SQL looks like; long values are cut."""

from __future__ import annotations

import pytest

from pgmcp.layers import Layers
from tests.fast.mcp.helpers import Connect, call_checked, error_text, rows_of, text_of

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("series", "expected_rows", "truncated"),
    [(4, 4, False), (5, 5, False), (6, 5, True), (1000, 5, True)],
    ids=["under", "exactly-at", "one-over", "far-over"],
)
async def test_row_cap_is_exact(connect: Connect, series: int, expected_rows: int, truncated: bool) -> None:
    async with connect(max_rows=5) as client:
        structured = await call_checked(client, "query", {"sql": f"SELECT g FROM generate_series(1, {series}) g"})
    assert rows_of(structured) == [[value] for value in range(1, expected_rows + 1)]
    assert structured["row_count"] == expected_rows and structured["max_rows"] == 5
    assert structured["truncated"] is truncated
    assert structured["truncated_reason"] == ("max_rows" if truncated else None)


async def test_the_model_may_ask_for_fewer_rows_never_more(connect: Connect) -> None:
    sql = "SELECT g FROM generate_series(1, 100) g"
    async with connect(max_rows=5) as client:
        fewer = await call_checked(client, "query", {"sql": sql, "max_rows": 3})
        more = await call_checked(client, "query", {"sql": sql, "max_rows": 50})
        invalid = error_text(await client.call_tool("query", {"sql": sql, "max_rows": 0}))
    assert fewer["row_count"] == 3 and fewer["max_rows"] == 3 and fewer["truncated_reason"] == "max_rows"
    assert more["row_count"] == 5 and more["max_rows"] == 5 and more["truncated_reason"] == "max_rows"
    assert "max_rows" in invalid and "greater than or equal to 1" in invalid


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM shop.orders",
        "WITH t AS (SELECT * FROM shop.orders) SELECT * FROM t",
        "TABLE shop.orders",
        "(SELECT * FROM shop.orders)",
        "SELECT * FROM shop.orders --",
        "SELECT * FROM shop.orders WHERE coalesce(note, '') <> 'LIMIT'",
        "SELECT * FROM (SELECT * FROM shop.orders LIMIT 1000000000) s",
        "VALUES (1), (2), (3), (4), (5), (6), (7), (8)",
        "SELECT generate_series(1, 100000000)",
        "SELECT * FROM shop.order_items a CROSS JOIN shop.order_items b",
    ],
    ids=[
        "plain",
        "cte",
        "table",
        "parenthesised",
        "trailing-comment",
        "limit-in-literal",
        "inner-limit",
        "values",
        "srf-in-target-list",
        "cartesian",
    ],  # fmt: skip
)
async def test_row_cap_cannot_be_evaded_by_shape(connect: Connect, sql: str) -> None:
    async with connect(max_rows=7) as client:
        structured = await call_checked(client, "query", {"sql": sql})
        after = await call_checked(client, "query", {"sql": "SELECT 42"})
    assert structured["row_count"] == 7 and structured["truncated_reason"] == "max_rows"
    assert rows_of(after) == [[42]]  # the cancelled stream left the pooled connection usable


@pytest.mark.parametrize(
    ("max_bytes", "expected_rows"),
    [(1024, 10), (1100, 11), (1099, 10)],
    ids=["under", "exactly-at", "one-byte-short"],
)
async def test_byte_cap_is_exact(connect: Connect, max_bytes: int, expected_rows: int) -> None:
    async with connect(max_bytes=max_bytes, max_cell_bytes=1024) as client:
        structured = await call_checked(client, "query", {"sql": "SELECT repeat('x', 100) FROM generate_series(1, 50)"})
        text = text_of(await client.call_tool("query", {"sql": "SELECT repeat('x', 100) FROM generate_series(1, 50)"}))
    assert structured["row_count"] == expected_rows and structured["bytes"] == 100 * expected_rows
    assert structured["truncated"] is True and structured["truncated_reason"] == "max_bytes"
    assert "truncated: the result reached the byte limit" in text


async def test_a_first_row_over_the_byte_cap_returns_no_rows(connect: Connect) -> None:
    async with connect(max_bytes=2048, max_cell_bytes=2048) as client:
        structured = await call_checked(
            client, "query", {"sql": "SELECT repeat('a', 2000) AS a, repeat('b', 2000) AS b"}
        )
    assert structured["rows"] == [] and structured["truncated_reason"] == "max_bytes"
    assert [column["name"] for column in structured["columns"]] == ["a", "b"]


async def test_long_values_are_cut_on_a_character_boundary(connect: Connect) -> None:
    async with connect(max_cell_bytes=64) as client:
        structured = await call_checked(
            client,
            "query",
            {
                "sql": "SELECT repeat('é', 100) AS long, 'short' AS short, "
                "jsonb_build_object('k', repeat('z', 200)) AS doc"
            },
        )
        text = text_of(await client.call_tool("query", {"sql": "SELECT repeat('é', 100)"}))
    long, short, doc = rows_of(structured)[0]
    assert long == "é" * 30 + "…" and len(long.encode()) == 63  # 30 two-byte characters and the 3-byte mark
    assert short == "short"
    assert isinstance(doc, str) and doc.startswith('{"k": "zzz') and doc.endswith("…") and len(doc.encode()) <= 64
    assert structured["truncated_cells"] == 2 and structured["truncated"] is True
    assert structured["truncated_reason"] == "max_cell_bytes" and structured["row_count"] == 1
    assert structured["bytes"] == 63 + 5 + len(doc.encode())
    assert "1 long values were cut" in text


async def test_large_text_from_the_demo_data_is_cut(connect: Connect) -> None:
    async with connect() as client:
        structured = await call_checked(
            client, "query", {"sql": "SELECT description FROM shop.products WHERE product_id = 50"}
        )
    (value,) = rows_of(structured)[0]
    assert value.startswith("Long description with unicode (é, ß, 漢字).") and value.endswith("…")
    assert len(value.encode()) <= 8192 and structured["truncated_cells"] == 1


async def test_without_the_cap_layer_everything_comes_back(connect: Connect) -> None:
    async with connect(layers=Layers(cap=False), max_rows=5, max_cell_bytes=64) as client:
        structured = await call_checked(
            client, "query", {"sql": "SELECT g, repeat('x', 500) FROM generate_series(1, 300) g"}
        )
    assert structured["row_count"] == 300 and structured["truncated"] is False and structured["max_rows"] is None
    assert all(len(row[1]) == 500 for row in rows_of(structured))
