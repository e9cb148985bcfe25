"""Property-based tests (hypothesis) of the guard: no input crashes it, and no mutation of a known attack or a
legitimate query that it accepts can write.

"Can write" is checked by running every accepted mutation on a private server, as the superuser, in a
read-WRITE transaction over the simple protocol (so a smuggled second statement would run too): with ROLE
and RO out of the way, the guard is the only defence. Before rolling back, the transaction must not have been
given a transaction ID (PostgreSQL assigns one at the first write of any kind), and no sequence, advisory
lock, large object, prepared statement or session setting may have changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devtools.native_pg import NativePostgres
from pgmcp.errors import QueryRejected
from pgmcp.guard import ValidatedQuery, validate
from pgmcp.layers import Layers
from pgmcp.policy import FunctionPolicy, load_function_policy
from tests.fixtures.pg import native_pg_fixture
from tests.security.corpus import CORPUS
from tests.security.legit_corpus import LEGIT

GUARD_ONLY = Layers.only("one", "ast")

SEEDS = sorted(
    {str(call.arguments["sql"]) for attack in CORPUS for call in attack.calls if "sql" in call.arguments}
    | {sql for name, sql in LEGIT.items() if "TABLESAMPLE SYSTEM_ROWS" not in sql}
)

FRAGMENTS = [
    ";", " ; ", "COMMIT", "ROLLBACK", "BEGIN", "DELETE FROM shop.orders", "UPDATE shop.products SET price = 0",
    "INSERT INTO shop.customers (email, full_name, country) VALUES ('p@q', 'p', 'DE')", "DROP TABLE shop.orders",
    "--", "\n", "/*", "*/", "'", "''", "$$", "$q$", "(", ")", ",", " ", "E'\\''", "U&\"", "\"", "\\",
    "pg_read_file('/etc/passwd')", "nextval('shop.orders_order_id_seq')", "pg_advisory_lock(1)",
    "set_config('search_path', 'x', false)", "lo_from_bytea(0, 'x')", "txid_current()", "pg_notify('c', 'x')",
    "FOR UPDATE", "INTO TEMP t", "WITH d AS (DELETE FROM shop.orders RETURNING 1) ", "RETURNING *", "SELECT",
    "SET ROLE app_owner", "EXPLAIN ANALYZE ", "LATERAL ", "UNION ALL SELECT 1", "(SELECT 1)", "AS x", "*",
]  # fmt: skip

STATE_SQL = """
SELECT pg_current_xact_id_if_assigned()::text,
       (SELECT string_agg(sequencename || '=' || coalesce(last_value, 0), ',' ORDER BY sequencename) FROM pg_sequences),
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'),
       (SELECT count(*) FROM pg_largeobject_metadata),
       (SELECT count(*) FROM pg_prepared_statements),
       current_setting('search_path'), current_setting('statement_timeout'), current_user::text,
       (SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings WHERE source = 'session')
"""


@st.composite
def mutations(draw: st.DrawFn) -> str:
    """A seed statement with one to four random edits: fragments spliced in, slices cut, duplicated or recased."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "cut", "duplicate", "recase"]))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at:]
        else:
            end = draw(st.integers(at, min(len(text), at + 40)))
            piece = text[at:end]
            replacement = {"cut": "", "duplicate": piece * 2, "recase": piece.swapcase()}[kind]
            text = text[:at] + replacement + text[end:]
    return text


private_pg = native_pg_fixture(scope="module", demo_orders=200)


@pytest.fixture(scope="module")
def private_policy(private_pg: NativePostgres) -> FunctionPolicy:
    async def load() -> FunctionPolicy:
        async with await psycopg.AsyncConnection.connect(private_pg.dsn("mcp_reader")) as conn:
            return await load_function_policy(conn)

    return asyncio.run(load())


@pytest.fixture(scope="module")
def runner(private_pg: NativePostgres) -> Iterator[psycopg.Connection]:
    # prepare_threshold=None: psycopg would otherwise prepare STATE_SQL itself and change what it counts
    with psycopg.connect(private_pg.dsn(), prepare_threshold=None) as conn:
        yield conn


def outcome(sql: str, policy: FunctionPolicy, layers: Layers) -> ValidatedQuery | QueryRejected:
    """The guard's verdict; any other exception fails the test that calls this."""
    try:
        return validate(sql, policy, layers)
    except QueryRejected as exc:
        return exc


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(sql=st.one_of(st.text(max_size=300), mutations()))
@pytest.mark.parametrize("layers", [Layers(), GUARD_ONLY, Layers.only("ast"), Layers.only("one")], ids=str)
def test_no_input_crashes_the_guard(reader_policy: FunctionPolicy, layers: Layers, sql: str) -> None:
    first = outcome(sql, reader_policy, layers)
    assert isinstance(first, ValidatedQuery | QueryRejected)
    if isinstance(first, ValidatedQuery):
        assert first.sql == sql
    # deterministic: the same text gets the same verdict
    second = outcome(sql, reader_policy, layers)
    assert type(second) is type(first)
    assert getattr(second, "rule", None) == getattr(first, "rule", None)


STORED_EXAMPLES = (
    # each was once found worth keeping: tried first, on every run, before the drawn mutations
    "SELECT 1; DELETE FROM shop.orders",
    "-- x\nCOMMIT; DELETE FROM shop.order_items",
    "SELECT * FROM (WITH d AS (DELETE FROM shop.orders RETURNING 1) SELECT 1) s",
    "SELECT nextval('shop.orders_order_id_seq')",
    "SELECT pg_advisory_lock(1) FROM shop.orders LIMIT 1",
    "SELECT set_config('search_path', 'x', false)",
    "WITH t AS (SELECT 1) SELECT * FROM t FOR UPDATE",
    "SELECT * INTO TEMP t FROM shop.orders",
    "EXPLAIN ANALYZE DELETE FROM shop.orders",
    "SELECT 1 /* ; DELETE FROM shop.orders */",
    "SELECT $$; DELETE FROM shop.orders; $$",
    "SELECT count(*) FROM shop.orders",
)
MIN_ACCEPTED = 120
MIN_REJECTED = 550
"""Of the 800 drawn mutations, at least this many must be accepted by the guard (and then run: the property is
only tested on those) and at least this many refused (the mutations are attacks, not noise)."""


def test_no_accepted_mutation_writes(private_policy: FunctionPolicy, runner: psycopg.Connection) -> None:
    counts = {"accepted": 0, "rejected": 0}

    @settings(max_examples=800, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(sql=mutations())
    def check(sql: str) -> None:
        verdict = outcome(sql, private_policy, GUARD_ONLY)
        if isinstance(verdict, QueryRejected):
            counts["rejected"] += 1
            return
        counts["accepted"] += 1
        runner.execute("BEGIN READ WRITE")
        try:
            runner.execute("SET LOCAL statement_timeout = '300ms'")
            before = runner.execute(STATE_SQL).fetchone()
            runner.execute("SAVEPOINT attack")
            try:
                runner.execute(sql.encode(), prepare=False)  # bytes: the simple protocol, every statement runs
            except psycopg.Error:
                runner.execute("ROLLBACK TO SAVEPOINT attack")
            after = runner.execute(STATE_SQL).fetchone()
            assert after == before, f"{sql!r} changed {before} into {after}"
        finally:
            runner.execute("ROLLBACK")

    for stored in reversed(STORED_EXAMPLES):
        check = example(sql=stored)(check)
    check()
    assert counts["accepted"] >= MIN_ACCEPTED and counts["rejected"] >= MIN_REJECTED, counts


def test_the_write_detector_detects_writes(runner: psycopg.Connection) -> None:
    """Control: the state probe above does see a write, a sequence step, an advisory lock and a session setting."""
    for sql in (
        "UPDATE shop.products SET price = price WHERE product_id = 1",
        "SELECT nextval('shop.orders_order_id_seq')",
        "SELECT pg_advisory_lock(99)",
        "SELECT set_config('work_mem', '7MB', false)",
    ):
        runner.execute("BEGIN READ WRITE")
        try:
            before = runner.execute(STATE_SQL).fetchone()
            runner.execute(sql.encode(), prepare=False)
            assert runner.execute(STATE_SQL).fetchone() != before, sql
        finally:
            runner.execute("ROLLBACK")
            runner.execute("SELECT pg_advisory_unlock_all()")
            runner.execute("RESET work_mem")
            runner.execute("SELECT setval('shop.orders_order_id_seq', (SELECT max(order_id) FROM shop.orders))")
