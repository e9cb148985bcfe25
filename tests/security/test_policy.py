"""The function policy of pgmcp.policy: volatility gate, deny-list, overloads, operators, casts, loading."""

from __future__ import annotations

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgmcp.policy import (
    ALLOWED_VOLATILE,
    DENIED_FUNCTIONS,
    FunctionInfo,
    FunctionPolicy,
    OperatorInfo,
    TypeInfo,
    judge_function,
    load_function_policy,
)
from tests.security.reviewed_functions import MUST_DENY, VOLATILE_ALLOWED


def test_function_info_rejects_unknown_volatility() -> None:
    with pytest.raises(ValueError, match="volatility of f must be one of i, s, v, not 'x'"):
        FunctionInfo("public", "f", "x")


def test_function_info_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind of f must be one of f, a, w, p"):
        FunctionInfo("public", "f", "s", kind="z")


def test_policy_needs_a_search_path() -> None:
    with pytest.raises(ValueError, match="search_path must name at least one schema"):
        FunctionPolicy.from_rows([], search_path=())


@pytest.mark.parametrize(
    ("function", "rule"),
    [
        (FunctionInfo("pg_catalog", "lower", "i", ("text",)), None),
        (FunctionInfo("pg_catalog", "now", "s"), None),
        (FunctionInfo("pg_catalog", "random", "v"), None),
        (FunctionInfo("pg_catalog", "pg_total_relation_size", "v", ("regclass",)), None),
        (FunctionInfo("pg_catalog", "currval", "v", ("regclass",)), "function_volatile"),
        (FunctionInfo("shop", "recalculate", "v"), "function_volatile"),
        # denied whatever the label says
        (FunctionInfo("pg_catalog", "txid_current", "s"), "function_denied"),
        (
            FunctionInfo("pg_catalog", "table_to_xml", "s", ("regclass", "boolean", "boolean", "text")),
            "function_denied",
        ),
        (FunctionInfo("pg_catalog", "pg_read_file", "i", ("text",)), "function_denied"),
        # prefix families, in any schema an extension chose
        (FunctionInfo("ext", "dblink_exec", "v", ("text", "text")), "function_denied"),
        (FunctionInfo("ext", "lo_manage", "v"), "function_denied"),
        (FunctionInfo("pg_catalog", "pg_try_advisory_xact_lock", "v", ("bigint",)), "function_denied"),
        (FunctionInfo("pg_catalog", "pg_ls_waldir", "v"), "function_denied"),
        # runs with its owner's privileges
        (FunctionInfo("shop", "report", "s", security_definer=True), "function_denied"),
    ],
    ids=lambda value: value.signature if isinstance(value, FunctionInfo) else str(value),
)
def test_judge_function(function: FunctionInfo, rule: str | None) -> None:
    refusal = judge_function(function)
    assert (refusal.rule if refusal else None) == rule
    if refusal is not None:
        assert function.name in refusal.reason
        assert refusal.hint


def test_every_overload_of_a_name_must_pass() -> None:
    """A stable f(int) does not vouch for a volatile f(text): PostgreSQL may resolve to either."""
    policy = FunctionPolicy.from_rows(
        [("public", "f", "s", ("integer",)), ("public", "f", "v", ("text",)), ("public", "f", "s", ("text", "text"))]
    )
    refusal = policy.check_call(("f",), 1)
    assert refusal is not None and refusal.rule == "function_volatile"
    assert "public.f(text)" in refusal.reason
    # only the two-argument overload can take two arguments
    assert policy.check_call(("f",), 2) is None


def test_arity_counts_defaults_and_variadics() -> None:
    with_default = FunctionInfo("public", "g", "s", ("integer", "integer"), defaults=1)
    assert with_default.accepts(1) and with_default.accepts(2)
    assert not with_default.accepts(0) and not with_default.accepts(3)
    variadic = FunctionInfo("public", "h", "s", ("text", "text[]"), variadic=True)
    assert variadic.accepts(1) and variadic.accepts(9)
    assert not variadic.accepts(-1)


def test_no_arity_match_judges_every_overload() -> None:
    """A call that matches no overload's arity errs towards judging all of them."""
    policy = FunctionPolicy.from_rows([("public", "f", "v", ("integer",)), ("public", "f", "s", ())])
    refusal = policy.check_call(("f",), 5)
    assert refusal is not None and refusal.rule == "function_volatile"


def test_search_path_decides_what_an_unqualified_name_reaches() -> None:
    policy = FunctionPolicy.from_rows([("ext", "risky", "v")], search_path=("pg_catalog", "public"))
    unknown = policy.check_call(("risky",), 0)
    assert unknown is not None and unknown.rule == "function_unknown"
    assert "search_schema" in unknown.hint
    qualified = policy.check_call(("ext", "risky"), 0)
    assert qualified is not None and qualified.rule == "function_volatile"
    # three-part names keep the schema part
    three = policy.check_call(("app", "ext", "risky"), 0)
    assert three is not None and three.rule == "function_volatile"


def test_denied_name_is_refused_even_when_not_installed() -> None:
    refusal = FunctionPolicy.from_rows([]).check_call(("dblink_exec",), 2)
    assert refusal is not None and refusal.rule == "function_denied"
    assert refusal.reason.startswith("dblink_exec() opens a connection")


def test_type_name_used_as_a_function_is_a_cast() -> None:
    risky_input = FunctionInfo("public", "evil_in", "v", ("cstring",))
    policy = FunctionPolicy.from_rows([], types=[TypeInfo("public", "evil", (risky_input,))])
    refusal = policy.check_call(("evil",), 1)
    assert refusal is not None and refusal.rule == "function_volatile"
    assert "a cast to public.evil runs public.evil_in(cstring)" in refusal.reason


def test_operator_backed_by_a_refused_function_is_refused() -> None:
    sleeper = FunctionInfo("public", "pg_sleep_op", "v", ("integer", "integer"))
    harmless = FunctionInfo("pg_catalog", "int4pl", "i", ("integer", "integer"))
    policy = FunctionPolicy.from_rows(
        [],
        operators=[
            OperatorInfo("public", "+", "integer", "integer", harmless),
            OperatorInfo("public", "+", "text", "text", sleeper),
            OperatorInfo("pg_catalog", "-", "integer", "integer", harmless),
        ],
    )
    refusal = policy.check_operator(("+",))
    assert refusal is not None and refusal.rule == "function_denied"
    assert refusal.reason.startswith("operator + is implemented by public.pg_sleep_op")
    assert policy.check_operator(("-",)) is None
    assert policy.check_operator(("pg_catalog", "+")) is None


# -- the live catalogue of PostgreSQL 18, as the reader role loads it ------------------------------------------


def test_loaded_policy_matches_the_server(reader_policy: FunctionPolicy, superuser: psycopg.Connection) -> None:
    counts = superuser.execute("SELECT (SELECT count(*) FROM pg_proc), (SELECT count(*) FROM pg_operator)").fetchone()
    assert counts is not None
    assert (len(reader_policy), len(reader_policy.operators)) == (counts[0], counts[1])
    assert reader_policy.search_path == ("pg_catalog", "public")


@pytest.mark.anyio
async def test_load_function_policy_reads_as_the_given_role(pg: NativePostgres) -> None:
    async with await psycopg.AsyncConnection.connect(pg.dsn("mcp_reader")) as conn:
        policy = await load_function_policy(conn)
    lower = policy.function_candidates(("lower",), 1)
    assert {function.signature for function in lower} >= {"pg_catalog.lower(text)"}
    assert all(function.volatility == "i" for function in lower)
    assert policy.type_candidates(("int4",))[0].functions


def test_allowed_volatile_functions_exist_and_are_volatile(reader_policy: FunctionPolicy) -> None:
    """The allow-list names real PostgreSQL 18 functions, each of them volatile (else it need not be listed)."""
    for name in sorted(ALLOWED_VOLATILE):
        overloads = reader_policy.function_candidates(("pg_catalog", name))
        assert overloads, f"{name} is not a pg_catalog function"
        assert all(function.volatility == "v" for function in overloads), name


def test_every_other_volatile_builtin_is_refused(reader_policy: FunctionPolicy) -> None:
    allowed = sorted(
        function.signature
        for function in reader_policy.functions
        if function.schema == "pg_catalog" and function.volatility == "v" and judge_function(function) is None
    )
    assert allowed == sorted(
        function.signature
        for function in reader_policy.functions
        if function.schema == "pg_catalog" and function.name in ALLOWED_VOLATILE
    )


def test_denied_builtins_are_refused_whatever_their_volatility(reader_policy: FunctionPolicy) -> None:
    present = [name for name in DENIED_FUNCTIONS if reader_policy.function_candidates(("pg_catalog", name))]
    assert len(present) >= 40, "the deny-list should name functions PostgreSQL 18 really has"
    for name in present:
        refusal = reader_policy.check_call(("pg_catalog", name), None)
        assert refusal is not None and refusal.rule == "function_denied", name


def test_no_builtin_operator_or_cast_is_refused(reader_policy: FunctionPolicy) -> None:
    """The operator and cast gates cost nothing on a stock server: none of its operators or casts is refused."""
    refused_operators = {
        operator.name for operator in reader_policy.operators if judge_function(operator.function) is not None
    }
    refused_types = {
        type_info.name
        for type_info in reader_policy.types
        if any(judge_function(function) is not None for function in type_info.functions)
    }
    assert (refused_operators, refused_types) == (set(), set())


def test_every_volatile_function_the_guard_accepts_was_reviewed(reader_policy: FunctionPolicy) -> None:
    """Against the catalogue: a volatile built-in the guard lets through is on the reviewed list with its reason,
    and the guard's allow-list is exactly the reviewed one (adding a function to either alone fails here)."""
    accepted = {
        function.name
        for function in reader_policy.functions
        if function.schema == "pg_catalog" and function.volatility == "v" and judge_function(function) is None
    }
    assert accepted == set(VOLATILE_ALLOWED), "review the change in tests/security/reviewed_functions.py"
    assert set(ALLOWED_VOLATILE) == set(VOLATILE_ALLOWED)
    assert all(reason.strip() for reason in VOLATILE_ALLOWED.values())


@pytest.mark.parametrize("name", sorted(MUST_DENY))
def test_every_reviewed_dangerous_function_is_denied_by_name(reader_policy: FunctionPolicy, name: str) -> None:
    """Dropping a name from the guard's deny-lists fails here even when the function is volatile (it would then be
    refused only as volatile, without saying what it does). Names of removed extensions (adminpack's pg_file_*)
    are refused whether or not they are installed."""
    refusal = reader_policy.check_call(("pg_catalog", name), None)
    assert refusal is not None and refusal.rule == "function_denied", name
