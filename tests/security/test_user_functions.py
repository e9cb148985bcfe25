"""Functions a database user wrote: their volatility label is a promise PostgreSQL does not enforce.

A STABLE plpgsql function may call `pg_advisory_lock()`, `pg_notify()` or `set_config()`; the AST layer must not
take its label at its word. It believes a user-written function only when it is LANGUAGE sql and its body passes
the same checks as a query (`pgmcp.guard.vet_function_bodies`); plpgsql and friends are refused, and so are
functions with SET clauses of their own. Clean SQL functions keep working: the analyst's helpers are not
over-blocked.

The functions are created by the application owner, as an application's migrations would, and dropped afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgmcp.guard import vet_function_bodies
from pgmcp.policy import FunctionInfo, FunctionPolicy
from tests.security.corpus import ALL_LAYER_NAMES
from tests.security.harness import Servers, text_of

LOCK_KEY = 4343
ADVISORY_LOCKS = f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {LOCK_KEY}"

FUNCTIONS = f"""
CREATE SCHEMA udf;
GRANT USAGE ON SCHEMA udf TO mcp_reader;
-- a lie in plpgsql: labelled STABLE, takes a session-level lock that outlives the transaction
CREATE FUNCTION udf.lying_plpgsql() RETURNS int LANGUAGE plpgsql STABLE
    AS $$ BEGIN PERFORM pg_advisory_lock({LOCK_KEY}); RETURN 1; END $$;
-- the same lie in SQL, in each of the three body forms
CREATE FUNCTION udf.lying_sql() RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT 1 FROM (SELECT pg_advisory_lock({LOCK_KEY})) AS locked $$;
CREATE FUNCTION udf.lying_return() RETURNS text LANGUAGE sql STABLE
    RETURN pg_advisory_lock({LOCK_KEY})::text;
CREATE FUNCTION udf.lying_atomic() RETURNS bigint LANGUAGE sql STABLE
    BEGIN ATOMIC SELECT 1; SELECT count(*) FROM (SELECT pg_advisory_lock({LOCK_KEY})) AS locked; END;
-- clean-looking, but calls a liar: refused through the call chain
CREATE FUNCTION udf.calls_a_liar() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT udf.lying_sql() + 1 $$;
-- clean body, but its own search_path decides what its unqualified names call
CREATE FUNCTION udf.with_settings() RETURNS int LANGUAGE sql STABLE SET search_path = udf, pg_catalog
    AS $$ SELECT 1 $$;
-- honest helpers an analyst may call: they only read
CREATE FUNCTION udf.order_total(order_id bigint) RETURNS numeric LANGUAGE sql STABLE
    AS $$ SELECT sum(quantity * unit_price) FROM shop.order_items WHERE order_items.order_id = $1 $$;
CREATE FUNCTION udf.net(amount numeric) RETURNS numeric LANGUAGE sql IMMUTABLE RETURN round(amount / 1.2, 2);
CREATE FUNCTION udf.top_order() RETURNS bigint LANGUAGE sql STABLE
    BEGIN ATOMIC SELECT order_id FROM shop.orders ORDER BY order_id LIMIT 1; END;
-- mutual recursion between clean functions stays believed
CREATE FUNCTION udf.even(n int) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE FUNCTION udf.odd(n int) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN n = 0 THEN false ELSE udf.even(n - 1) END $$;
CREATE OR REPLACE FUNCTION udf.even(n int) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN n = 0 THEN true ELSE udf.odd(n - 1) END $$;
"""

REFUSED = {
    "SELECT udf.lying_plpgsql()": "is written in plpgsql",
    "SELECT udf.lying_sql()": "has a SQL body this server refuses",
    "SELECT udf.lying_return()": "has a SQL body this server refuses",
    "SELECT * FROM udf.lying_atomic()": "has a SQL body this server refuses",
    "SELECT udf.calls_a_liar()": "has a SQL body this server refuses",
    "SELECT udf.with_settings()": "sets configuration of its own",
}


@pytest.fixture(scope="module")
def user_functions(pg: NativePostgres) -> Iterator[None]:
    with psycopg.connect(pg.dsn(), autocommit=True) as superuser:
        superuser.execute("GRANT CREATE ON DATABASE app TO app_owner")
    try:
        with psycopg.connect(pg.dsn("app_owner"), autocommit=True) as owner:
            owner.execute(FUNCTIONS)  # type: ignore[arg-type] # a fixed script of this test
        yield
    finally:
        with psycopg.connect(pg.dsn(), autocommit=True) as superuser:
            superuser.execute("DROP SCHEMA IF EXISTS udf CASCADE")
            superuser.execute("REVOKE CREATE ON DATABASE app FROM app_owner")


def test_a_stable_label_really_hides_a_session_lock(pg: NativePostgres, user_functions: None) -> None:
    """The control: in a read-only transaction that is rolled back, each liar keeps its lock."""
    for sql in REFUSED:
        if "with_settings" in sql:
            continue  # its danger is what its search_path resolves, not a lock
        with psycopg.connect(pg.dsn("mcp_reader")) as conn:
            conn.execute("BEGIN READ ONLY")
            conn.execute(sql)  # type: ignore[arg-type] # fixed statements of this test
            conn.rollback()
            assert conn.execute(ADVISORY_LOCKS).fetchone() == (1,), sql


@pytest.mark.parametrize("active", [ALL_LAYER_NAMES, ("ast",)], ids=["all", "only-ast"])
@pytest.mark.parametrize("sql", list(REFUSED), ids=list(REFUSED.values()))
def test_a_user_written_function_is_believed_only_with_a_clean_sql_body(
    servers: Servers,
    superuser: psycopg.Connection,
    user_functions: None,
    active: tuple[str, ...],
    sql: str,
) -> None:
    harness = servers.private(active)  # opened after the functions exist: its function policy knows them
    try:
        result = harness.call("query", sql=sql)
        assert result.is_error, text_of(result)
        assert "rule: function_denied" in text_of(result) and REFUSED[sql] in text_of(result), text_of(result)
        assert superuser.execute(ADVISORY_LOCKS).fetchone() == (0,)
        assert harness.session_state() == harness.fresh_session
    finally:
        harness.close()


def test_clean_sql_helpers_keep_working(servers: Servers, superuser: psycopg.Connection, user_functions: None) -> None:
    expected = superuser.execute(
        "SELECT udf.order_total(min(order_id)), udf.net(120), udf.top_order(), udf.odd(7) FROM shop.orders"
    ).fetchone()
    harness = servers.private(ALL_LAYER_NAMES)
    try:
        result = harness.call(
            "query",
            sql="SELECT udf.order_total($1) AS total, udf.net(120) AS net, udf.top_order() AS first, udf.odd(7) AS odd",
            params=[1],
        )
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None
        assert expected is not None and expected[2] == 1 and expected[3] is True
        assert result.structured_content["rows"] == [[str(expected[0]), "100.00", 1, True]]
    finally:
        harness.close()


def test_the_fixpoint_refuses_through_any_depth_of_calls() -> None:
    """Without a server: a chain a -> b -> c where only c is dirty refuses all three; a clean cycle stays."""

    def sql_function(name: str, body: str) -> FunctionInfo:
        return FunctionInfo(
            "udf",
            name,
            "s",
            distrust="has a SQL body that has not been checked",
            definition=f"CREATE FUNCTION udf.{name}() RETURNS int LANGUAGE sql STABLE AS $$ {body} $$",
        )

    policy = FunctionPolicy.from_rows(
        [
            ("pg_catalog", "pg_advisory_lock", "v", ("bigint",)),
            sql_function("a", "SELECT udf.b()"),
            sql_function("b", "SELECT udf.c()"),
            sql_function("c", "SELECT pg_advisory_lock(1)::int"),
            sql_function("x", "SELECT udf.y()"),
            sql_function("y", "SELECT udf.x()"),
        ],
        search_path=("pg_catalog", "udf"),
    )
    vetted = vet_function_bodies(policy)
    refused = {function.name for function in vetted.functions if function.distrust is not None}
    assert refused == {"a", "b", "c"}
    assert vetted.check_call(("udf", "x"), 0) is None
    refusal = vetted.check_call(("udf", "a"), 0)
    assert refusal is not None and refusal.rule == "function_denied" and "udf.b" in refusal.reason


def test_the_vetting_logs_its_count_and_names_and_refuses_with_the_rule(caplog: pytest.LogCaptureFixture) -> None:
    """Without a server: the startup log line says how many bodies were checked and which were refused; a body's
    refusal carries the rule and what the guard said; a definition that is not CREATE FUNCTION is refused too."""

    def sql_function(name: str, body: str, definition: str | None = None) -> FunctionInfo:
        return FunctionInfo(
            "udf",
            name,
            "s",
            distrust="has a SQL body that has not been checked",
            definition=definition or f"CREATE FUNCTION udf.{name}() RETURNS int LANGUAGE sql STABLE AS $$ {body} $$",
        )

    policy = FunctionPolicy.from_rows(
        [
            ("pg_catalog", "pg_advisory_lock", "v", ("bigint",)),
            sql_function("clean", "SELECT 1"),
            sql_function("plain", "SELECT 2"),
            sql_function("split", "", definition="CREATE FUNCTION udf.split() RETURNS int LANGUAGE sql STABLE "
                         "AS 'SELECT 1 UNION ALL ', 'SELECT 2'"),
            sql_function("dirty", "SELECT pg_advisory_lock(1)::int"),
            sql_function("odd", "", definition="SELECT 1"),
        ],
        search_path=("pg_catalog", "udf"),
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="pgmcp.guard"):
        vetted = vet_function_bodies(policy)
    distrust = {function.name: function.distrust for function in vetted.functions if function.schema == "udf"}
    assert distrust["clean"] is None
    assert distrust["dirty"] == (
        "has a SQL body this server refuses (function_denied: pg_catalog.pg_advisory_lock(bigint) takes advisory "
        "locks, which outlive the query and can block other applications)"
    )
    assert distrust["split"] is None  # the quoted parts of an AS body are one text, joined as they are
    assert distrust["odd"] == (
        "has a SQL body this server refuses (syntax: its definition is not a CREATE FUNCTION statement)"
    )
    # 3 believed and 2 refused: the count is of the refused ones
    assert caplog.messages == ["checked 5 user-written SQL functions: 2 refused (udf.dirty(), udf.odd())"]


def test_the_vetting_says_none_when_every_body_is_clean(caplog: pytest.LogCaptureFixture) -> None:
    """Without a server: when no body is refused, the startup line says so in words."""
    policy = FunctionPolicy.from_rows(
        [
            FunctionInfo(
                "udf",
                "clean",
                "s",
                distrust="has a SQL body that has not been checked",
                definition="CREATE FUNCTION udf.clean() RETURNS int LANGUAGE sql STABLE AS $$ SELECT 1 $$",
            )
        ],
        search_path=("pg_catalog", "udf"),
    )
    with caplog.at_level(logging.INFO, logger="pgmcp.guard"):
        vetted = vet_function_bodies(policy)
    assert vetted.check_call(("udf", "clean"), 0) is None
    assert caplog.messages == ["checked 1 user-written SQL functions: 0 refused (none)"]


def test_an_empty_atomic_body_only_reads() -> None:
    """Without a server: `BEGIN ATOMIC END` (a valid SQL-standard body with no statement) parses as one empty
    block; the function is believed, like any body that only reads, instead of failing the startup check."""
    policy = FunctionPolicy.from_rows(
        [
            FunctionInfo(
                "udf",
                "nothing",
                "s",
                distrust="has a SQL body that has not been checked",
                definition="CREATE FUNCTION udf.nothing() RETURNS void LANGUAGE sql STABLE BEGIN ATOMIC END",
            )
        ],
        search_path=("pg_catalog", "udf"),
    )
    assert vet_function_bodies(policy).check_call(("udf", "nothing"), 0) is None
