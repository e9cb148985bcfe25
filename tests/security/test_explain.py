"""EXPLAIN through the query tool: the explained statement passes exactly the guard any query passes, ANALYZE
runs only where the operator allows it (MCP_ALLOW_EXPLAIN_ANALYZE) whatever way it is spelt, and only the
options PostgreSQL 18 knows are accepted.

The guard is checked on its own against the reader's live function policy, and PostgreSQL is asked to confirm
how it reads each spelling (so the guard's reading of "ANALYZE is on" cannot drift from the server's). Refusals
go through `mcp.Client` to the real server with every layer on and with the AST layer alone (which logs in as
the superuser, with no read-only transaction: only the guard stands in the way), then the database is checked
through a superuser, as test_attacks.py does. EXPLAIN ANALYZE of writes and side effects is in the attack corpus
(B11, run by test_attacks.py with every layer, with AST alone and with each database-side layer alone).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgmcp.errors import QueryRejected
from pgmcp.guard import EXPLAIN_OPTIONS, validate
from pgmcp.layers import Layers
from pgmcp.policy import FunctionPolicy
from tests.security.corpus import ALL_LAYER_NAMES
from tests.security.harness import McpHarness, Servers, harness_settings, text_of
from tests.security.state import DatabaseState, assert_unchanged, capture_state

ALL = Layers()
AST_ALONE = Layers.only("ast")
READ = "SELECT count(*) FROM shop.orders WHERE status = 'paid'"

# Every spelling of ANALYZE we know; PostgreSQL reads each as ANALYZE on (test_postgres_reads_analyze_as_the_guard_does)
ANALYZE_ON = {
    "keyword": "EXPLAIN ANALYZE {sql}",
    "british": "EXPLAIN ANALYSE {sql}",
    "lowercase": "explain analyze {sql}",
    "with-verbose": "EXPLAIN ANALYZE VERBOSE {sql}",
    "in-parentheses": "EXPLAIN (ANALYZE) {sql}",
    "british-in-parentheses": "EXPLAIN (ANALYSE) {sql}",
    "true": "EXPLAIN (ANALYZE true) {sql}",
    "mixed-case-true": "EXPLAIN (analyze TrUe) {sql}",
    "one": "EXPLAIN (ANALYZE 1) {sql}",
    "on": "EXPLAIN (ANALYZE on) {sql}",
    "quoted-on": "EXPLAIN (ANALYZE 'on') {sql}",
    "quoted-name": 'EXPLAIN ("analyze") {sql}',
    "unicode-on": 'EXPLAIN (ANALYZE U&"\\006fn") {sql}',
    "after-other-options": "EXPLAIN (COSTS OFF, FORMAT JSON, ANALYZE) {sql}",
    "second-one-wins": "EXPLAIN (ANALYZE false, ANALYZE) {sql}",
    "off-then-on": "EXPLAIN (ANALYZE off, ANALYZE on) {sql}",
    "comments": "/* plan */ EXPLAIN /* only */ ANALYZE -- really\n {sql}",
}
# Values PostgreSQL refuses as a boolean: the guard reads them as ANALYZE on too, never as off
ANALYZE_INVALID = {
    "yes": "EXPLAIN (ANALYZE yes) {sql}",
    "two": "EXPLAIN (ANALYZE 2) {sql}",
    "minus-one": "EXPLAIN (ANALYZE -1) {sql}",
    "decimal": "EXPLAIN (ANALYZE 1.0) {sql}",
}
# Explicitly off: a plan without running the statement, accepted wherever EXPLAIN is
ANALYZE_OFF = {
    "false": "EXPLAIN (ANALYZE false) {sql}",
    "zero": "EXPLAIN (ANALYZE 0) {sql}",
    "off": "EXPLAIN (ANALYZE off) {sql}",
    "quoted-off": "EXPLAIN (ANALYZE 'off') {sql}",
    "upper-false": "EXPLAIN (ANALYZE FALSE, COSTS OFF) {sql}",
}
OPTION_REFUSALS = {
    "unknown": "EXPLAIN (FOO) {sql}",
    "quoted-upper-analyze": 'EXPLAIN ("ANALYZE") {sql}',
    "quoted-british": 'EXPLAIN ("analyse") {sql}',
    "wal-without-analyze": "EXPLAIN (WAL) {sql}",
    "serialize-without-analyze": "EXPLAIN (SERIALIZE text) {sql}",
    "timing-without-analyze": "EXPLAIN (TIMING on) {sql}",
    "measuring-after-analyze-off": "EXPLAIN (ANALYZE off, SERIALIZE binary) {sql}",
}
INNER_REFUSALS = {
    "insert": ("EXPLAIN INSERT INTO shop.customers (email, full_name, country) VALUES ('a@b', 'a', 'DE')",
               "statement_type"),
    "update": ("EXPLAIN (COSTS OFF) UPDATE shop.products SET price = 0", "statement_type"),
    "delete": ("EXPLAIN DELETE FROM shop.orders", "statement_type"),
    "merge": ("EXPLAIN MERGE INTO shop.products p USING shop.products q ON p.product_id = q.product_id "
              "WHEN MATCHED THEN DELETE", "statement_type"),
    "create-table-as": ("EXPLAIN ANALYZE CREATE TABLE shop.stolen AS SELECT * FROM shop.customers", "statement_type"),
    "select-into": ("EXPLAIN ANALYZE SELECT * INTO stolen FROM shop.customers", "into_clause"),
    "execute": ("EXPLAIN ANALYZE EXECUTE p", "statement_type"),
    "cursor": ("EXPLAIN DECLARE c CURSOR FOR SELECT 1", "statement_type"),
    "locking": ("EXPLAIN ANALYZE SELECT * FROM shop.orders FOR UPDATE", "locking_clause"),
    "writing-cte": ("EXPLAIN ANALYZE WITH d AS (DELETE FROM shop.orders RETURNING 1) SELECT count(*) FROM d",
                    "data_modifying_cte"),
    "advisory-lock": ("EXPLAIN ANALYZE SELECT pg_advisory_lock(42)", "function_denied"),
    "volatile": ("EXPLAIN (ANALYZE 1) SELECT currval('shop.orders_order_id_seq')", "function_volatile"),
    "sleep": ("EXPLAIN (ANALYZE, TIMING off) SELECT pg_sleep(10)", "function_denied"),
    "stacked": ("EXPLAIN SELECT 1; DELETE FROM shop.orders", "not_single_statement"),
}  # fmt: skip


def _forms(forms: dict[str, str]) -> list[str]:
    return [form.format(sql=READ) for form in forms.values()]


def _validate(sql: str, policy: FunctionPolicy, layers: Layers, *, explain_analyze: bool) -> str:
    """The guard's verdict as a rule id, or "accepted"."""
    try:
        validated = validate(sql, policy, layers, explain_analyze=explain_analyze)
    except QueryRejected as exc:
        return exc.rule
    assert validated.kind == "explain" and validated.sql == sql
    return "accepted"


# -- the guard on its own ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [ALL, AST_ALONE], ids=["all", "ast-alone"])
@pytest.mark.parametrize("sql", _forms(ANALYZE_ON | ANALYZE_INVALID), ids=list(ANALYZE_ON | ANALYZE_INVALID))
def test_every_spelling_of_analyze_needs_the_operator(reader_policy: FunctionPolicy, layers: Layers, sql: str) -> None:
    assert _validate(sql, reader_policy, layers, explain_analyze=False) == "explain_analyze"
    assert _validate(sql, reader_policy, layers, explain_analyze=True) == "accepted"


@pytest.mark.parametrize("sql", _forms(ANALYZE_OFF), ids=list(ANALYZE_OFF))
def test_analyze_switched_off_is_a_plain_explain(reader_policy: FunctionPolicy, sql: str) -> None:
    assert _validate(sql, reader_policy, ALL, explain_analyze=False) == "accepted"


@pytest.mark.parametrize("explain_analyze", [False, True], ids=["analyze-refused", "analyze-allowed"])
@pytest.mark.parametrize("sql", _forms(OPTION_REFUSALS), ids=list(OPTION_REFUSALS))
def test_unknown_and_measuring_options_are_refused(
    reader_policy: FunctionPolicy, sql: str, explain_analyze: bool
) -> None:
    with pytest.raises(QueryRejected) as caught:
        validate(sql, reader_policy, ALL, explain_analyze=explain_analyze)
    assert caught.value.rule == "explain_option"
    assert "\nhint: " in caught.value.message


def test_measuring_options_come_with_analyze(reader_policy: FunctionPolicy) -> None:
    sql = f"EXPLAIN (ANALYZE, SERIALIZE binary, WAL, TIMING off, BUFFERS, MEMORY, SUMMARY, SETTINGS) {READ}"
    assert _validate(sql, reader_policy, ALL, explain_analyze=True) == "accepted"
    assert _validate(f"EXPLAIN (TIMING false, SERIALIZE none) {READ}", reader_policy, ALL, explain_analyze=False) == (
        "accepted"
    )


@pytest.mark.parametrize("layers", [ALL, AST_ALONE], ids=["all", "ast-alone"])
@pytest.mark.parametrize(("sql", "rule"), INNER_REFUSALS.values(), ids=list(INNER_REFUSALS))
def test_the_explained_statement_passes_the_same_guard(
    reader_policy: FunctionPolicy, layers: Layers, sql: str, rule: str
) -> None:
    """With ANALYZE allowed, the worst case: only a read the guard accepts as a query may be explained."""
    expected = "statement_type" if rule == "not_single_statement" and not layers.one else rule
    assert _validate(sql, reader_policy, layers, explain_analyze=True) == expected


# -- PostgreSQL agrees with the guard's reading --------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyzing(servers: Servers) -> McpHarness:
    """Every layer on, EXPLAIN ANALYZE allowed (the harness default)."""
    return servers.get(ALL_LAYER_NAMES)


def _plan_text(harness: McpHarness, sql: str) -> str:
    result = harness.call("query", sql=sql)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert [column["name"] for column in result.structured_content["columns"]] == ["QUERY PLAN"]
    return "\n".join(str(row[0]) for row in result.structured_content["rows"])


@pytest.mark.parametrize("sql", _forms(ANALYZE_ON), ids=list(ANALYZE_ON))
def test_postgres_reads_analyze_as_the_guard_does(analyzing: McpHarness, sql: str) -> None:
    assert "actual" in _plan_text(analyzing, sql).lower()


@pytest.mark.parametrize("sql", _forms(ANALYZE_OFF), ids=list(ANALYZE_OFF))
def test_postgres_reads_analyze_off_as_the_guard_does(analyzing: McpHarness, sql: str) -> None:
    plan = _plan_text(analyzing, sql)
    assert "Aggregate" in plan and "actual" not in plan.lower()


@pytest.mark.parametrize("sql", _forms(ANALYZE_INVALID), ids=list(ANALYZE_INVALID))
def test_postgres_refuses_what_is_not_a_boolean(analyzing: McpHarness, sql: str) -> None:
    result = analyzing.call("query", sql=sql)
    assert result.is_error and "requires a Boolean value" in text_of(result), text_of(result)


OPTION_VALUES = {"format": "FORMAT YAML", "serialize": "SERIALIZE text", "generic_plan": "GENERIC_PLAN"}


@pytest.mark.parametrize("option", sorted(EXPLAIN_OPTIONS))
def test_every_accepted_option_is_one_postgres_knows(analyzing: McpHarness, option: str) -> None:
    spelt = OPTION_VALUES.get(option, option.upper())
    # GENERIC_PLAN plans without running, so it cannot go with ANALYZE
    sql = f"EXPLAIN ({spelt}) {READ}" if option == "generic_plan" else f"EXPLAIN (ANALYZE, {spelt}) {READ}"
    assert _plan_text(analyzing, sql)


# -- refusals through the server, with the database checked afterwards ----------------------------------------------


@pytest.fixture(scope="module")
def refusing(pg: NativePostgres) -> Iterator[dict[str, McpHarness]]:
    """Servers whose operator left MCP_ALLOW_EXPLAIN_ANALYZE off: every layer on, and AST alone."""
    opened: dict[str, McpHarness] = {}
    try:
        for name, layers in (("all", ALL), ("ast-alone", AST_ALONE)):
            opened[name] = McpHarness(harness_settings(pg, layers, allow_explain_analyze=False), layers)
        yield opened
    finally:
        for harness in opened.values():
            harness.close()


@pytest.fixture(scope="module")
def before(pg: NativePostgres) -> Iterator[tuple[psycopg.Connection, DatabaseState]]:
    with psycopg.connect(pg.dsn(), autocommit=True) as checker:
        yield checker, capture_state(checker)


RUNNING_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
    "AND state = 'active'"
)


@pytest.mark.parametrize("layers", ["all", "ast-alone"])
@pytest.mark.parametrize(
    "sql",
    [*_forms(ANALYZE_ON | ANALYZE_INVALID), *(sql for sql, _ in INNER_REFUSALS.values())],
    ids=[*ANALYZE_ON, *ANALYZE_INVALID, *(f"inner-{name}" for name in INNER_REFUSALS)],
)
def test_refused_through_the_server_and_nothing_ran(
    refusing: dict[str, McpHarness], before: tuple[psycopg.Connection, DatabaseState], layers: str, sql: str
) -> None:
    harness = refusing[layers]
    checker, baseline = before
    result = harness.call("query", sql=sql)
    text = text_of(result)
    assert result.is_error and text.startswith("query rejected: ") and "\nrule: " in text, text
    if sql in _forms(ANALYZE_ON | ANALYZE_INVALID):
        assert "\nrule: explain_analyze " in text and "MCP_ALLOW_EXPLAIN_ANALYZE=false" in text, text
    assert_unchanged(baseline, checker)
    assert checker.execute(RUNNING_SQL).fetchone() == (0,)
    assert harness.session_state() == harness.fresh_session


@pytest.mark.parametrize("layers", ["all", "ast-alone"])
def test_a_plain_explain_works_where_analyze_is_refused(refusing: dict[str, McpHarness], layers: str) -> None:
    plan = _plan_text(refusing[layers], f"EXPLAIN (COSTS OFF) {READ}")
    assert "Aggregate" in plan and "actual" not in plan.lower()
