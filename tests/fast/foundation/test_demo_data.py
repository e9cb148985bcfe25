"""The demo shop: size follows DEMO_ORDERS, data is consistent and documented."""

from __future__ import annotations

import psycopg

from devtools.native_pg import NativePostgres


def test_sizes_follow_demo_orders(pg: NativePostgres, superuser: psycopg.Connection) -> None:
    counts = superuser.execute(
        "SELECT (SELECT count(*) FROM shop.orders), (SELECT count(*) FROM shop.customers),"
        " (SELECT count(*) FROM shop.products), (SELECT count(*) FROM shop.order_items)"
    ).fetchone()
    assert counts is not None
    orders, customers, products, items = counts
    assert orders == pg.demo_orders
    assert customers == max(100, pg.demo_orders // 10)
    assert products == 500
    # 1 to 4 line items per order, 2.5 on average
    assert pg.demo_orders <= items <= 4 * pg.demo_orders
    assert abs(items / orders - 2.5) < 0.1


def test_order_totals_match_their_items(superuser: psycopg.Connection) -> None:
    mismatches = superuser.execute(
        "SELECT count(*) FROM shop.orders o"
        " WHERE o.total <> (SELECT coalesce(sum(quantity * unit_price), 0) FROM shop.order_items i"
        "                   WHERE i.order_id = o.order_id)"
    ).fetchone()
    assert mismatches == (0,)


def test_data_covers_the_types_backups_must_keep(superuser: psycopg.Connection) -> None:
    """NULLs, arrays, jsonb, large text and non-ASCII text are all present."""
    row = superuser.execute(
        "SELECT (SELECT count(*) FROM shop.customers WHERE preferences IS NULL),"
        " (SELECT count(*) FROM shop.customers WHERE cardinality(tags) = 2),"
        " (SELECT max(length(description)) FROM shop.products),"
        " (SELECT count(*) FROM shop.products WHERE description LIKE '%漢字%'),"
        " (SELECT count(*) FROM shop.orders WHERE shipped_at IS NULL)"
    ).fetchone()
    assert row is not None
    null_preferences, two_tags, longest, unicode_rows, unshipped = row
    assert null_preferences > 0 and two_tags > 0 and unicode_rows > 0 and unshipped > 0
    assert longest > 50_000


def test_every_table_and_column_of_note_is_commented(superuser: psycopg.Connection) -> None:
    missing = superuser.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'shop' AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL"
    ).fetchall()
    assert missing == []


DIGEST_SQL = """
SELECT md5(string_agg(format('%s|%s|%s|%s|%s', o.order_id, o.customer_id, o.status, o.total,
                             (SELECT string_agg(format('%s:%s:%s', i.product_id, i.quantity, i.unit_price), ';'
                                                ORDER BY i.line_no)
                              FROM shop.order_items i WHERE i.order_id = o.order_id)), ',' ORDER BY o.order_id))
FROM shop.orders o
"""


def test_same_seed_same_data(pg: NativePostgres, superuser: psycopg.Connection) -> None:
    """Two servers loaded with the same DEMO_ORDERS hold identical data (restore checks rely on it)."""
    with NativePostgres(demo_orders=pg.demo_orders) as other, psycopg.connect(other.dsn()) as conn:
        assert conn.execute(DIGEST_SQL).fetchone() == superuser.execute(DIGEST_SQL).fetchone()
