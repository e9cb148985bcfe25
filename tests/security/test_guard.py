"""pgmcp.guard on its own: rules, messages, layer switches, and inputs that must not crash it."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from pglast import parse_sql, parser

from pgmcp.errors import RULES, QueryRejected
from pgmcp.guard import MAX_SQL_CHARS, MAX_TOKENS, ValidatedQuery, references, validate
from pgmcp.layers import Layers
from pgmcp.policy import FunctionInfo, FunctionPolicy, OperatorInfo, TypeInfo

ALL = Layers()

REJECTIONS = [
    # statement shapes
    ("SELECT 1; COMMIT; DROP SCHEMA public CASCADE;", "not_single_statement"),
    ("DELETE FROM shop.orders", "statement_type"),
    ("UPDATE shop.products SET price = 0", "statement_type"),
    ("INSERT INTO shop.customers (email, full_name, country) VALUES ('a@b', 'a', 'DE')", "statement_type"),
    ("MERGE INTO shop.products p USING shop.products q ON p.product_id = q.product_id WHEN MATCHED THEN DELETE",
     "statement_type"),
    ("COMMIT", "statement_type"),
    ("BEGIN READ WRITE", "statement_type"),
    ("SET TRANSACTION READ WRITE", "statement_type"),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "statement_type"),
    ("SET statement_timeout = 0", "statement_type"),
    ("RESET ALL", "statement_type"),
    ("SET ROLE app_owner", "statement_type"),
    ("SET SESSION AUTHORIZATION postgres", "statement_type"),
    ("SHOW search_path", "statement_type"),
    ("EXPLAIN ANALYZE DELETE FROM shop.orders", "statement_type"),
    ("COPY shop.orders TO '/tmp/orders.csv'", "statement_type"),
    ("COPY (SELECT 1) TO PROGRAM 'id'", "statement_type"),
    ("DO $$BEGIN EXECUTE 'DELETE FROM shop.orders'; END$$", "statement_type"),
    ("CALL shop.some_proc()", "statement_type"),
    ("PREPARE p AS SELECT 1", "statement_type"),
    ("EXECUTE p", "statement_type"),
    ("DECLARE c CURSOR FOR SELECT 1", "statement_type"),
    ("LOCK TABLE shop.orders IN ACCESS EXCLUSIVE MODE", "statement_type"),
    ("LISTEN ch", "statement_type"),
    ("NOTIFY ch, 'x'", "statement_type"),
    ("VACUUM shop.orders", "statement_type"),
    ("ANALYZE shop.orders", "statement_type"),
    ("CREATE TABLE x AS SELECT * FROM shop.orders", "statement_type"),
    ("DISCARD ALL", "statement_type"),
    ("CHECKPOINT", "statement_type"),
    ("LOAD 'auto_explain'", "statement_type"),
    ("GRANT SELECT ON shop.orders TO PUBLIC", "statement_type"),
    ("ALTER SYSTEM SET work_mem = '1GB'", "statement_type"),
    ("TRUNCATE shop.orders", "statement_type"),
    # clauses
    ("SELECT * FROM shop.orders FOR UPDATE", "locking_clause"),
    ("SELECT * FROM shop.orders FOR NO KEY UPDATE SKIP LOCKED", "locking_clause"),
    ("SELECT * FROM (SELECT * FROM shop.orders FOR SHARE) s", "locking_clause"),
    ("SELECT * FROM shop.orders WHERE order_id IN (SELECT order_id FROM shop.orders FOR KEY SHARE)", "locking_clause"),
    ("SELECT * INTO TEMP stolen FROM shop.customers", "into_clause"),
    ("SELECT * INTO stolen FROM shop.customers", "into_clause"),
    ("WITH d AS (DELETE FROM shop.orders RETURNING *) SELECT count(*) FROM d", "data_modifying_cte"),
    ("WITH a AS (SELECT 1), b AS (UPDATE shop.products SET price = 0 RETURNING 1) SELECT * FROM a",
     "data_modifying_cte"),
    ("WITH i AS (INSERT INTO shop.customers (email, full_name, country) VALUES ('a@b','a','DE') RETURNING 1) "
     "SELECT * FROM i", "data_modifying_cte"),
    ("SELECT * FROM (WITH d AS (DELETE FROM shop.orders RETURNING 1) SELECT * FROM d) s", "data_modifying_cte"),
    # functions, wherever they hide
    ("SELECT pg_read_file('/etc/passwd')", "function_denied"),
    ("SELECT * FROM pg_read_file('/etc/passwd')", "function_denied"),
    ("SELECT * FROM ROWS FROM (generate_series(1, 2), pg_ls_dir('.')) AS t(a, b)", "function_denied"),
    ("SELECT * FROM shop.orders o, LATERAL (SELECT pg_sleep(1)) s", "function_denied"),
    ("SELECT (SELECT lo_import('/etc/passwd'))", "function_denied"),
    ("SELECT 1 WHERE EXISTS (SELECT pg_terminate_backend(pid) FROM pg_stat_activity)", "function_denied"),
    ("SELECT count(*) FILTER (WHERE pg_advisory_lock(42) IS NULL) FROM shop.orders", "function_denied"),
    ("SELECT row_number() OVER (ORDER BY nextval('shop.orders_order_id_seq'))", "function_denied"),
    ("SELECT CASE WHEN true THEN set_config('statement_timeout', '0', false) END", "function_denied"),
    ("SELECT query_to_xml('select pg_read_file(''/etc/passwd'')', true, false, '')", "function_denied"),
    ("SELECT * FROM ts_stat('select to_tsvector(email) from shop.customers')", "function_denied"),
    ("SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')", "function_denied"),
    ("SELECT pg_catalog.pg_read_file('/etc/passwd')", "function_denied"),
    ("SELECT PG_READ_FILE('/etc/passwd')", "function_denied"),
    ('SELECT "pg_read_file"(\'/etc/passwd\')', "function_denied"),
    ("SELECT U&\"pg\\005fread\\005ffile\"('/etc/passwd')", "function_denied"),
    ("SELECT pg_import_system_collations('pg_catalog')", "function_denied"),
    ("SELECT pg_notify('ch', 'x')", "function_denied"),
    ("SELECT txid_current()", "function_denied"),
    ("SELECT dblink_exec('dbname=app', 'DROP TABLE shop.orders')", "function_denied"),
    ("SELECT * FROM dblink('host=169.254.169.254', 'select 1') AS t(x int)", "function_denied"),
    ("SELECT currval('shop.orders_order_id_seq')", "function_volatile"),
    ("SELECT setseed(0.5)", "function_denied"),
    ("SELECT json_agg(x) FROM (SELECT pg_stat_file('postgresql.conf') AS x) s", "function_denied"),
    ("VALUES (pg_sleep(1))", "function_denied"),
    ("SELECT * FROM shop.orders ORDER BY pg_backend_pid() + pg_cancel_backend(1)::int", "function_denied"),
    ("SELECT xmlelement(name x, pg_read_file('/etc/passwd'))", "function_denied"),
    ("SELECT * FROM json_table(pg_read_file('/etc/passwd')::jsonb, '$' COLUMNS (a int PATH '$.a')) t",
     "function_denied"),
    ("SELECT nosuch_function(1)", "function_unknown"),
    ("SELECT shop.nosuch()", "function_unknown"),
]  # fmt: skip


# Ids without backslashes: pytest escapes a backslash in an id each time it collects, so a second collection in
# the same process (mutmut's) names that case differently and cannot find it.
@pytest.mark.parametrize(("sql", "rule"), REJECTIONS, ids=[sql[:60].replace("\\", "") for sql, _ in REJECTIONS])
def test_guard_rejects(reader_policy: FunctionPolicy, sql: str, rule: str) -> None:
    with pytest.raises(QueryRejected) as caught:
        validate(sql, reader_policy, ALL)
    assert caught.value.rule == rule
    assert caught.value.message.startswith("query rejected: ")
    assert "\nhint: " in caught.value.message
    assert str(caught.value) == caught.value.message


@pytest.mark.parametrize(
    ("sql", "rule", "words"),
    [
        ("EXPLAIN ANALYZE SELECT 1", "explain_analyze", "does not allow it (MCP_ALLOW_EXPLAIN_ANALYZE=false)"),
        ("EXPLAIN (WAL) SELECT 1", "explain_option", "WAL measures an execution"),
        ("COMMIT", "statement_type", "already runs in its own read-only transaction"),
        ("SET statement_timeout = 0", "statement_type", "current_setting('name')"),
        ("SELECT * FROM shop.orders FOR UPDATE", "locking_clause", "remove the locking clause"),
        ("SELECT * INTO t FROM shop.orders", "into_clause", "remove the INTO clause"),
        ("SELECT pg_read_file('x')", "function_denied", "pg_catalog.pg_read_file(text) reads files"),
        ("SELECT query_to_xml('select 1', true, false, '')", "function_denied", "write that SQL directly"),
        ("SELECT nextval('s')", "function_denied", "advances a sequence"),
        ("SELECT 1; SELECT 2", "not_single_statement", "the query holds 2 statements"),
        ("SELECT FROM WHERE", "syntax", 'PostgreSQL cannot parse it: syntax error at or near "WHERE"'),
    ],
)
def test_rejection_messages_say_what_to_do(reader_policy: FunctionPolicy, sql: str, rule: str, words: str) -> None:
    with pytest.raises(QueryRejected) as caught:
        validate(sql, reader_policy, ALL)
    assert caught.value.rule == rule
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("", "not_single_statement"),
        ("   \n\t ", "not_single_statement"),
        ("-- only a comment", "not_single_statement"),
        ("/* nothing */ ;;", "not_single_statement"),
        ("SELECT (", "syntax"),
        ("SELECT 'unterminated", "syntax"),
        ("SELECT $$;$$; DELETE FROM shop.orders", "not_single_statement"),
        ("SELECT 1\x00; DELETE FROM shop.orders", "syntax"),
        ("SELECT '\ud800'", "syntax"),
        ("SELECT 1 " + " " * MAX_SQL_CHARS, "too_large"),
    ],
    ids=["empty", "blank", "comment", "semicolons", "open-paren", "open-quote", "dollar-quote", "nul", "surrogate",
         "huge"],
)  # fmt: skip
def test_malformed_input_is_rejected_not_crashed(reader_policy: FunctionPolicy, sql: str, rule: str) -> None:
    with pytest.raises(QueryRejected) as caught:
        validate(sql, reader_policy, ALL)
    assert caught.value.rule == rule


@pytest.mark.parametrize("value", [None, 42, b"SELECT 1", ["SELECT 1"]], ids=repr)
def test_non_text_is_a_syntax_rejection(reader_policy: FunctionPolicy, value: Any) -> None:
    with pytest.raises(QueryRejected) as caught:
        validate(value, reader_policy, ALL)
    assert caught.value.rule == "syntax"


def test_too_many_tokens_is_too_large(reader_policy: FunctionPolicy) -> None:
    sql = "SELECT " + "+".join(["1"] * MAX_TOKENS)
    assert len(sql) < MAX_SQL_CHARS
    with pytest.raises(QueryRejected) as caught:
        validate(sql, reader_policy, ALL)
    assert caught.value.rule == "too_large"
    tokens = len(parser.scan(sql))
    assert (caught.value.what, caught.value.hint) == (
        f"the query has {tokens} tokens, more than the {MAX_TOKENS} this server parses",
        "write a shorter query: aggregate in SQL, and pass long value lists as one array parameter",
    )
    at_limit = "SELECT " + "+".join(["1"] * ((MAX_TOKENS - 1) // 2 + 1))
    assert len(parser.scan(at_limit)) == MAX_TOKENS
    assert validate(at_limit, reader_policy, ALL).kind == "select"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + "+".join(["1"] * 9000),  # a left-deep tree 9,000 levels deep
        "SELECT 'a'" + "||'a'" * 9000,
        "SELECT 1" + "::int" * 9000,
        "SELECT " + "-" * 9000 + "1",
    ],
    ids=["plus", "concat", "casts", "negations"],
)
def test_deep_trees_parse_whatever_the_callers_stack(reader_policy: FunctionPolicy, sql: str) -> None:
    """pglast converts trees recursively in C: on a small stack these crash the process unless the guard
    moves the parse to its own thread. Run from a thread with a 512 KiB stack to prove it does."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(validate(sql, reader_policy, ALL))
        except QueryRejected as exc:
            outcome.append(exc)

    previous = threading.stack_size(512 * 1024)
    try:
        thread = threading.Thread(target=target)
        thread.start()
    finally:
        threading.stack_size(previous)
    thread.join()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ValidatedQuery), outcome[0]
    assert outcome[0].fingerprint is not None


def test_deep_subselects_are_a_syntax_rejection(reader_policy: FunctionPolicy) -> None:
    sql = "SELECT " + "(SELECT " * 5000 + "1" + ")" * 5000
    with pytest.raises(QueryRejected) as caught:
        validate(sql, reader_policy, ALL)
    assert caught.value.rule == "syntax"
    assert caught.value.what.startswith("PostgreSQL cannot parse it: memory exhausted"), caught.value.what
    assert caught.value.hint == ONE_SELECT


# -- what comes back --------------------------------------------------------------------------------------------


def test_validated_query_keeps_the_text_unchanged(reader_policy: FunctionPolicy) -> None:
    sql = "  /* why */ SELECT status, count(*)\n FROM shop.orders GROUP BY 1 ;  "
    validated = validate(sql, reader_policy, ALL)
    assert validated == ValidatedQuery(
        sql, validated.fingerprint, "select", 1, frozenset({"shop"}), frozenset({"orders"})
    )
    assert validated.fingerprint and len(validated.fingerprint) == 16


@pytest.mark.parametrize(
    ("sql", "qualifiers", "relations"),
    [
        ("SELECT 1", set(), set()),
        ("SELECT * FROM orders o JOIN hr.salaries s ON true", {"hr"}, {"orders", "salaries"}),
        ("WITH x AS (SELECT 1) SELECT * FROM x, lateral (SELECT * FROM a.b) y", {"a"}, {"x", "b"}),
        ("SELECT lower(name), hr.f(1), pg_catalog.upper('x') FROM t", {"hr", "pg_catalog"}, {"t"}),
        ("SELECT NULL::hr.t, CAST(1 AS int)", {"hr", "pg_catalog"}, set()),
        ("SELECT (SELECT max(x) FROM s.u) FROM v WHERE y IN (SELECT z FROM w.q)", {"s", "w"}, {"u", "v", "q"}),
        ("EXPLAIN SELECT * FROM m.n", {"m"}, {"n"}),
    ],
)
def test_the_names_a_statement_reaches_are_collected(
    reader_policy: FunctionPolicy, sql: str, qualifiers: set[str], relations: set[str]
) -> None:
    """What `pgmcp.scope` judges a schema-limited caller's statement by: every schema written before a name,
    anywhere in it (subqueries, CTEs, LATERAL, casts, EXPLAIN), and every relation it reads."""
    qualified, read = references(parse_sql(sql))
    assert (qualified, read) == (frozenset(qualifiers), frozenset(relations))


def test_fingerprint_ignores_constants(reader_policy: FunctionPolicy) -> None:
    first = validate("SELECT * FROM shop.orders WHERE order_id = 1", reader_policy, ALL)
    second = validate("select *  from shop.orders where order_id = 9999", reader_policy, ALL)
    other = validate("SELECT * FROM shop.orders WHERE customer_id = 1", reader_policy, ALL)
    assert first.fingerprint == second.fingerprint != other.fingerprint


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", "select"),
        ("VALUES (1), (2)", "values"),
        ("EXPLAIN (COSTS OFF) SELECT 1", "explain"),
        ("TABLE shop.orders", "select"),
        ("WITH t AS (SELECT 1) SELECT * FROM t", "select"),
        ("(SELECT 1) UNION (SELECT 2)", "select"),
    ],
)
def test_kind(reader_policy: FunctionPolicy, sql: str, kind: str) -> None:
    assert validate(sql, reader_policy, ALL).kind == kind


def test_query_rejected_knows_only_stable_rules() -> None:
    with pytest.raises(ValueError, match="unknown guard rule 'made_up'"):
        QueryRejected("made_up", "x", "y")
    assert {"syntax", "not_single_statement", "statement_type", "function_denied", "node_type"} <= RULES


# -- layer switches ---------------------------------------------------------------------------------------------


def test_one_alone_counts_statements_but_does_not_judge_them(reader_policy: FunctionPolicy) -> None:
    one = Layers.only("one")
    assert validate("DELETE FROM shop.orders", reader_policy, one).statement_count == 1
    with pytest.raises(QueryRejected) as caught:
        validate("SELECT 1; COMMIT; DELETE FROM shop.orders", reader_policy, one)
    assert caught.value.rule == "not_single_statement"
    with pytest.raises(QueryRejected) as caught:
        validate("SELEC 1", reader_policy, one)
    assert caught.value.rule == "syntax"


def test_ast_alone_judges_every_stacked_statement(reader_policy: FunctionPolicy) -> None:
    ast_only = Layers.only("ast")
    assert validate("SELECT 1; SELECT 2", reader_policy, ast_only).statement_count == 2
    with pytest.raises(QueryRejected) as caught:
        validate("SELECT 1; COMMIT; DELETE FROM shop.orders", reader_policy, ast_only)
    assert caught.value.rule == "statement_type"


def test_without_one_and_ast_the_text_passes_through(reader_policy: FunctionPolicy) -> None:
    neither = Layers.only("ro", "role", "tmo", "cap", "hyg")
    passed = validate("SELECT 1; DROP TABLE shop.orders", reader_policy, neither)
    assert (passed.sql, passed.kind, passed.statement_count) == ("SELECT 1; DROP TABLE shop.orders", "unchecked", None)
    assert passed.fingerprint is not None
    garbage = validate("this is not SQL", reader_policy, neither)
    assert garbage.fingerprint is None
    # the text checks hold whatever the layers: they protect the parser and the audit log
    with pytest.raises(QueryRejected):
        validate("SELECT 1\x00", reader_policy, neither)


def test_rejections_carry_a_fingerprint_when_the_text_parsed(reader_policy: FunctionPolicy) -> None:
    with pytest.raises(QueryRejected) as parsed:
        validate("SELECT pg_read_file('/etc/passwd')", reader_policy, ALL)
    same_shape = validate("SELECT lower('/etc/passwd')", reader_policy, ALL)
    assert parsed.value.fingerprint and len(parsed.value.fingerprint) == 16
    assert parsed.value.fingerprint != same_shape.fingerprint
    with pytest.raises(QueryRejected) as unparsable:
        validate("SELECT (", reader_policy, ALL)
    assert unparsable.value.fingerprint is None


# -- exact refusals: rule, what and hint, as the model reads them ----------------------------------------------


def refusal(sql: str, policy: FunctionPolicy, *, explain_analyze: bool = False) -> tuple[str, str, str]:
    with pytest.raises(QueryRejected) as caught:
        validate(sql, policy, ALL, explain_analyze=explain_analyze)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("query rejected: ") and lines[1].startswith("hint: "), lines
    return caught.value.rule, lines[0].removeprefix("query rejected: "), lines[1].removeprefix("hint: ")


KNOWN_OPTIONS = (
    "ANALYZE, BUFFERS, COSTS, FORMAT, GENERIC_PLAN, MEMORY, SERIALIZE, SETTINGS, SUMMARY, TIMING, VERBOSE, WAL"
)


@pytest.mark.parametrize(
    ("sql", "explain_analyze", "expected"),
    [
        ("EXPLAIN (FOO) SELECT 1", False,
         ("explain_option", "EXPLAIN option 'foo' is not one this server accepts", f"use only {KNOWN_OPTIONS}")),
        ("EXPLAIN ANALYZE SELECT 1", False,
         ("explain_analyze",
          "EXPLAIN ANALYZE runs the statement, and this server's operator does not allow it "
          "(MCP_ALLOW_EXPLAIN_ANALYZE=false)",
          "drop ANALYZE (and SERIALIZE, WAL, TIMING) to get the estimated plan")),
        ("EXPLAIN (TIMING, WAL) SELECT 1", False,
         ("explain_option", "EXPLAIN option TIMING, WAL measures an execution, and this EXPLAIN has no ANALYZE",
          "drop TIMING, WAL")),
        ("EXPLAIN (TIMING, WAL) SELECT 1", True,
         ("explain_option", "EXPLAIN option TIMING, WAL measures an execution, and this EXPLAIN has no ANALYZE",
          "drop TIMING, WAL, or add ANALYZE")),
    ],
    ids=["unknown-option", "analyze-not-allowed", "measuring-without-analyze", "measuring-analyze-allowed"],
)  # fmt: skip
def test_explain_refusals_say_exactly_what_and_how(
    reader_policy: FunctionPolicy, sql: str, explain_analyze: bool, expected: tuple[str, str, str]
) -> None:
    assert refusal(sql, reader_policy, explain_analyze=explain_analyze) == expected


def test_a_statement_past_the_checks_is_unchecked_only_when_no_check_ran(reader_policy: FunctionPolicy) -> None:
    """`kind` names what ran: with ONE alone a statement the AST layer would refuse is "unchecked", and an
    EXPLAIN is still "explain"."""
    one = Layers.only("one")
    assert validate("SHOW work_mem", reader_policy, one).kind == "unchecked"
    assert validate("DELETE FROM shop.orders", reader_policy, one).kind == "unchecked"
    assert validate("EXPLAIN SELECT 1", reader_policy, one).kind == "explain"


ONE_SELECT = "send exactly one read-only statement: SELECT, VALUES, TABLE or WITH ... SELECT"


@pytest.mark.parametrize(
    ("sql", "rule", "what", "hint"),
    [
        ("SELECT * FROM shop.orders FOR UPDATE", "locking_clause",
         "FOR UPDATE / FOR SHARE / FOR [NO] KEY ... lock rows, and this server only reads",
         "remove the locking clause; a plain SELECT sees a consistent snapshot"),
        ("SELECT * INTO t FROM shop.orders", "into_clause",
         "SELECT ... INTO creates a table, and this server only reads", "remove the INTO clause"),
        ("WITH gone AS (DELETE FROM shop.orders RETURNING *) SELECT * FROM gone", "data_modifying_cte",
         "the WITH query 'gone' writes data: it is DELETE", "make every WITH query a SELECT"),
        ("WITH x AS (INSERT INTO shop.orders DEFAULT VALUES RETURNING 1) SELECT 1", "data_modifying_cte",
         "the WITH query 'x' writes data: it is INSERT", "make every WITH query a SELECT"),
        ("VALUES (DEFAULT)", "node_type",
         "the query uses SetToDefault, which is outside the read-only SQL this server accepts",
         "rewrite it with plain SELECT syntax"),
        (5, "syntax", "the query must be text, not int", ONE_SELECT),
        (" \n ", "not_single_statement", "the query is empty", ONE_SELECT),
        ("SELECT 1\x00", "syntax", "the query contains a NUL character (U+0000)", "remove the NUL character"),
        ("SELECT 1" + " " * MAX_SQL_CHARS, "too_large",
         f"the query is {MAX_SQL_CHARS + 8} characters long, more than the {MAX_SQL_CHARS} this server accepts",
         "write a shorter query: aggregate in SQL, and pass long value lists as one array parameter"),
        ("SELECT '\ud800'", "syntax", "the query is not valid Unicode text (at character 9)", "send UTF-8 text"),
        ("-- nothing", "not_single_statement", "the query holds no statement, only comments", ONE_SELECT),
        ("SELECT 1; SELECT 2", "not_single_statement", "the query holds 2 statements",
         "send exactly one statement, without a second one after a semicolon"),
        ("COMMIT", "statement_type", "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) is not accepted",
         "send the SELECT alone: every call already runs in its own read-only transaction"),
        ("GRANT SELECT ON shop.orders TO public", "statement_type", "Grant statements change the database", ONE_SELECT),
        ("CREATE TABLE t (a int)", "statement_type", "Create statements change the database", ONE_SELECT),
    ],
    ids=["locking", "into", "cte-delete", "cte-insert", "node", "not-text", "blank", "nul", "too-long", "surrogate",
         "empty", "two", "commit", "grant", "create"],
)  # fmt: skip
def test_refusals_say_exactly_what_and_what_to_do(
    reader_policy: FunctionPolicy, sql: object, rule: str, what: str, hint: str
) -> None:
    """The whole text of each refusal of a part of a SELECT: the model reads it to rewrite the query."""
    with pytest.raises(QueryRejected) as caught:
        validate(sql, reader_policy, ALL)
    assert (caught.value.rule, caught.value.what, caught.value.hint) == (rule, what, hint)


def test_a_call_is_judged_by_the_overload_its_argument_count_selects() -> None:
    """`f(*)` has no arguments; `f(a) WITHIN GROUP (ORDER BY b)` has two. Each stable overload below has a
    volatile twin of another arity, so a miscounted call lands on the volatile one and is refused."""
    policy = FunctionPolicy.from_rows(
        [
            FunctionInfo("udf", "tally", "s", (), kind="a"),
            FunctionInfo("udf", "tally", "v", ("integer",), kind="a"),
            FunctionInfo("udf", "pct", "s", ("double precision", "integer"), kind="a"),
            FunctionInfo("udf", "pct", "v", ("double precision",), kind="a"),
            FunctionInfo("udf", "pct", "v", (), kind="a"),
        ],
        search_path=("pg_catalog", "udf"),
    )
    for sql in (
        "SELECT udf.tally(*) FROM shop.orders",
        "SELECT udf.pct(0.5) WITHIN GROUP (ORDER BY 1) FROM shop.orders",
    ):
        assert validate(sql, policy, ALL).kind == "select", sql
    for sql in ("SELECT udf.tally(1) FROM shop.orders", "SELECT udf.pct(0.5) FROM shop.orders"):
        with pytest.raises(QueryRejected) as caught:
            validate(sql, policy, ALL)
        assert caught.value.rule == "function_volatile", (sql, caught.value.rule)


def operator_policy(*, ge: str = "i", le: str = "i") -> FunctionPolicy:
    """Built-in-looking comparison operators of the given volatility, and a user operator `@#@` run by a
    volatile function (as CREATE OPERATOR over a plpgsql function would make)."""

    def operator(name: str, volatility: str) -> OperatorInfo:
        function = FunctionInfo("public", f"op_{len(name)}_{volatility}", volatility, ("integer", "integer"))
        return OperatorInfo("public", name, "integer", "integer", function)

    operators = [operator(">=", ge), operator("<=", le), operator("-", "i"), operator("@#@", "v")]
    return FunctionPolicy.from_rows([], operators=operators, search_path=("pg_catalog", "public"))


@pytest.mark.parametrize(
    "sql",
    ["SELECT 1 @#@ 2", "SELECT 1 WHERE 1 @#@ ANY (SELECT 2)", "SELECT 1 AS n ORDER BY 1 USING @#@"],
    ids=["expression", "sublink", "order-by-using"],
)
def test_an_operator_run_by_a_refused_function_is_refused_wherever_it_is_written(sql: str) -> None:
    with pytest.raises(QueryRejected) as caught:
        validate(sql, operator_policy(), ALL)
    assert caught.value.rule == "function_volatile"
    assert caught.value.what.startswith("operator @#@ is implemented by public.op_3_v(integer, integer)")


def test_between_runs_both_comparison_operators() -> None:
    """BETWEEN's parse tree names no operator: the guard judges >= and <=, which is what PostgreSQL runs."""
    between = "SELECT 1 WHERE 1 BETWEEN 0 AND 2"
    assert validate(between, operator_policy(), ALL).kind == "select"
    assert validate("SELECT 1 - 2", operator_policy(), ALL).kind == "select"
    for policy, operator in ((operator_policy(ge="v"), ">="), (operator_policy(le="v"), "<=")):
        for sql in (between, "SELECT 1 WHERE 1 NOT BETWEEN SYMMETRIC 2 AND 0"):
            with pytest.raises(QueryRejected) as caught:
                validate(sql, policy, ALL)
            assert caught.value.what.startswith(f"operator {operator} is implemented by"), (sql, caught.value.what)


def test_a_cast_to_a_type_whose_input_function_is_refused_is_refused() -> None:
    """`'x'::evil` runs evil's input function: the guard judges it like a call, in a cast or a column type."""
    risky = FunctionInfo("public", "evil_in", "v", ("cstring",))
    policy = FunctionPolicy.from_rows(
        [], types=[TypeInfo("public", "evil", (risky,))], search_path=("pg_catalog", "public")
    )
    for sql in ("SELECT 'x'::evil", "SELECT CAST('x' AS public.evil)"):
        with pytest.raises(QueryRejected) as caught:
            validate(sql, policy, ALL)
        assert caught.value.rule == "function_volatile", sql
        assert "a cast to public.evil runs public.evil_in(cstring)" in caught.value.what, caught.value.what


def test_a_long_query_is_fingerprinted_too(reader_policy: FunctionPolicy) -> None:
    """Past the inline size the parse runs on a thread with a big stack; the audit log's fingerprint is the same
    pglast fingerprint, and still ignores constants."""
    long_sql = "SELECT " + " + ".join(["1"] * 5000)
    assert len(long_sql) > 2_000  # pgmcp.guard._INLINE_CHARS: parsed on the big-stack thread
    validated = validate(long_sql, reader_policy, ALL)
    assert validated.fingerprint == parser.fingerprint(long_sql)
    assert validate(long_sql.replace("1", "2"), reader_policy, ALL).fingerprint == validated.fingerprint


def test_the_text_limit_is_exact(reader_policy: FunctionPolicy) -> None:
    """MAX_SQL_CHARS characters are parsed; one more is refused before parsing."""
    at_limit = "SELECT 1" + " " * (MAX_SQL_CHARS - 8)
    assert len(at_limit) == MAX_SQL_CHARS and validate(at_limit, reader_policy, ALL).kind == "select"
    with pytest.raises(QueryRejected) as caught:
        validate(at_limit + " ", reader_policy, ALL)
    assert caught.value.rule == "too_large"


@pytest.mark.parametrize("error", [RecursionError, MemoryError])
def test_a_parser_out_of_stack_or_memory_is_a_too_large_refusal(
    reader_policy: FunctionPolicy, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    """No query within MAX_TOKENS exhausts the big-stack thread here, so the parser is made to fail as an odd
    input could make it fail: the refusal says what to do, and nothing escapes as a crash."""

    def exhausted(sql: str) -> None:
        raise error()

    monkeypatch.setattr("pgmcp.guard.parser.parse_sql", exhausted)
    with pytest.raises(QueryRejected) as caught:
        validate("SELECT 1", reader_policy, ALL)
    assert (caught.value.rule, caught.value.what, caught.value.hint) == (
        "too_large",
        "the query is nested too deeply to analyse",
        "flatten the expression or split it into CTEs",
    )


def test_a_parser_failing_in_an_unforeseen_way_is_a_syntax_refusal(
    reader_policy: FunctionPolicy, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Any other exception from pglast is a refusal named after it, and a warning in the log: never a crash."""

    def odd(sql: str) -> None:
        raise ValueError("unexpected node")

    monkeypatch.setattr("pgmcp.guard.parser.parse_sql", odd)
    with caplog.at_level(logging.WARNING, logger="pgmcp.guard"), pytest.raises(QueryRejected) as caught:
        validate("SELECT 1", reader_policy, ALL)
    assert (caught.value.rule, caught.value.what, caught.value.hint) == (
        "syntax",
        "PostgreSQL's parser refused it (ValueError)",
        ONE_SELECT,
    )
    assert caplog.messages == ["pglast failed on a query with ValueError: unexpected node"]
