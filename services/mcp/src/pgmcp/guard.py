"""The SQL guard: the ONE and AST layers (docs/security.md), applied before a query reaches the database.

`validate()` parses the text with PostgreSQL's own parser (libpg_query, through pglast), so comments,
quoting, dollar quoting and Unicode escapes are seen exactly as the server will see them. Then:

- ONE: exactly one statement;
- AST: the statement is a read (SELECT, VALUES, TABLE, WITH ... SELECT), or an EXPLAIN of one; every node
  of its tree, down through CTEs, sub-selects, FROM-clause functions, LATERAL and JSON/XML tables, is of an
  allowed type; no locking clause, no INTO, no data-modifying CTE; every function, operator and cast passes
  the function policy (`pgmcp.policy`).

EXPLAIN: the explained statement goes through exactly the same checks, so only a read can be explained. That
is stricter than it has to be for a plain EXPLAIN of an INSERT (which plans without running it), on purpose:
one allow-list, no second path to reason about. ANALYZE runs the statement, so it needs the operator's
`MCP_ALLOW_EXPLAIN_ANALYZE`; it counts as requested whatever way it is spelt (`ANALYZE`, `ANALYSE`, `(ANALYZE
1)`, `(ANALYZE 'on')`, `("analyze")`, a second ANALYZE after `ANALYZE false`) unless every ANALYZE option is
explicitly off. Only the options PostgreSQL 18 knows are accepted, and those that measure an execution
(SERIALIZE, WAL, TIMING) only with ANALYZE.

Anything refused raises `pgmcp.errors.QueryRejected` with a stable `rule` and a message that tells a model
what was refused and what to write instead. No other exception escapes `validate()`, whatever the input.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pglast import ast, parser
from pglast.enums import A_Expr_Kind

from pgmcp.errors import RULES, QueryRejected
from pgmcp.layers import Layers
from pgmcp.policy import FunctionPolicy, Refusal

logger = logging.getLogger(__name__)

__all__ = [
    "EXPLAIN_OPTIONS",
    "MAX_SQL_CHARS",
    "MAX_TOKENS",
    "RULES",
    "ValidatedQuery",
    "references",
    "validate",
    "vet_function_bodies",
]


MAX_SQL_CHARS = 100_000
MAX_TOKENS = 20_000
# pglast turns libpg_query's tree into Python objects recursively in C: a left-deep chain such as
# `1+1+...+1` costs about 300 bytes of C stack per level and crashes the process, not with an exception,
# at about 25,000 levels on an 8 MiB stack (measured with pglast 8.8). The tree can be no deeper than the
# query has tokens, so text short enough to hold at most _INLINE_CHARS tokens is parsed on the caller's
# thread; longer text is parsed on a thread whose stack holds MAX_TOKENS levels with a wide margin.
_INLINE_CHARS = 2_000
_PARSE_STACK_BYTES = 64 * 1024 * 1024
_stack_size_lock = threading.Lock()

_HINT_ONE_SELECT = "send exactly one read-only statement: SELECT, VALUES, TABLE or WITH ... SELECT"

EXPLAIN_OPTIONS = frozenset(
    {
        "analyze", "buffers", "costs", "format", "generic_plan", "memory", "serialize", "settings", "summary",
        "timing", "verbose", "wal",
    }
)  # fmt: skip
"""The EXPLAIN options of PostgreSQL 18 (`ANALYSE` and `ANALYZE` both parse as "analyze"); any other is refused,
so that an option a later release adds is judged before it is accepted."""
_EXECUTION_OPTIONS = frozenset({"serialize", "timing", "wal"})
"""Options that measure an execution: meaningful, and accepted, only with ANALYZE (PostgreSQL refuses them too)."""
_OFF_VALUES = frozenset({"false", "off", "none"})


@dataclass(frozen=True, slots=True)
class ValidatedQuery:
    """A query the active layers accepted; `sql` is the text exactly as given, to run unchanged."""

    sql: str
    fingerprint: str | None  # pglast fingerprint: equal for queries that differ only in constants
    kind: str  # "select", "values" or "explain"; "unchecked" when neither ONE nor AST parsed it
    statement_count: int | None = None  # None when the text was not parsed
    qualifiers: frozenset[str] = frozenset()  # schemas written before a relation, function or type name
    relations: frozenset[str] = frozenset()  # the relation names it reads (CTE names included), unqualified


# -- parsing ----------------------------------------------------------------------------------------------

_T = TypeVar("_T")


def _on_big_stack(function: Callable[[], _T]) -> _T:
    """Run `function` on a fresh thread with a stack of _PARSE_STACK_BYTES and return its result."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, function()))
        except BaseException as exc:  # handed back to the caller's thread below
            outcome.append((False, exc))

    with _stack_size_lock:
        previous = threading.stack_size(_PARSE_STACK_BYTES)
        try:
            thread = threading.Thread(target=target, name="pgmcp-guard-parse", daemon=True)
            thread.start()
        finally:
            threading.stack_size(previous)
    thread.join()
    succeeded, value = outcome[0]
    if succeeded:
        return value  # type: ignore[no-any-return]
    raise value


def _check_text(sql: object) -> str:
    if not isinstance(sql, str):
        raise QueryRejected("syntax", f"the query must be text, not {type(sql).__name__}", _HINT_ONE_SELECT)
    if not sql.strip():
        raise QueryRejected("not_single_statement", "the query is empty", _HINT_ONE_SELECT)
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRejected(
            "too_large",
            f"the query is {len(sql)} characters long, more than the {MAX_SQL_CHARS} this server accepts",
            "write a shorter query: aggregate in SQL, and pass long value lists as one array parameter",
        )
    if "\x00" in sql:
        raise QueryRejected("syntax", "the query contains a NUL character (U+0000)", "remove the NUL character")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryRejected(
            "syntax", f"the query is not valid Unicode text (at character {exc.start + 1})", "send UTF-8 text"
        ) from None
    return sql


def _parse(sql: str) -> tuple[ast.RawStmt, ...]:
    """libpg_query's parse tree of `sql`, or QueryRejected("syntax" / "too_large")."""
    try:
        if len(sql) <= _INLINE_CHARS:
            return tuple(parser.parse_sql(sql))
        tokens = len(parser.scan(sql))
        if tokens > MAX_TOKENS:
            raise QueryRejected(
                "too_large",
                f"the query has {tokens} tokens, more than the {MAX_TOKENS} this server parses",
                "write a shorter query: aggregate in SQL, and pass long value lists as one array parameter",
            )
        return tuple(_on_big_stack(lambda: parser.parse_sql(sql)))
    except QueryRejected:
        raise
    except parser.ParseError as exc:
        raise QueryRejected("syntax", f"PostgreSQL cannot parse it: {exc}", _HINT_ONE_SELECT) from None
    except (RecursionError, MemoryError):
        raise QueryRejected(
            "too_large", "the query is nested too deeply to analyse", "flatten the expression or split it into CTEs"
        ) from None
    except Exception as exc:  # the parser must never take the server down with an odd input
        logger.warning("pglast failed on a query with %s: %s", type(exc).__name__, exc)
        raise QueryRejected(
            "syntax", f"PostgreSQL's parser refused it ({type(exc).__name__})", _HINT_ONE_SELECT
        ) from None


def _fingerprint(sql: str) -> str | None:
    try:
        if len(sql) <= _INLINE_CHARS:
            return str(parser.fingerprint(sql))
        return str(_on_big_stack(lambda: parser.fingerprint(sql)))
    except Exception:  # a fingerprint is for the audit log; an unparsable text simply has none
        return None


# -- the statement allow-list ------------------------------------------------------------------------------

_STATEMENT_ADVICE: dict[str, tuple[str, str]] = {
    "ExplainStmt": (
        "EXPLAIN is accepted only as the whole statement, not inside another one",
        "send EXPLAIN [(options)] SELECT ... as the statement itself",
    ),
    "TransactionStmt": (
        "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) is not accepted",
        "send the SELECT alone: every call already runs in its own read-only transaction",
    ),
    "VariableSetStmt": (
        "SET and RESET (including SET ROLE, SET SESSION AUTHORIZATION, SET TRANSACTION) are not accepted",
        "send the SELECT alone: the server fixes roles, timeouts and limits; read a setting with "
        "SELECT current_setting('name')",
    ),
    "VariableShowStmt": ("SHOW is not accepted", "use SELECT current_setting('name') instead"),
    "InsertStmt": ("INSERT writes data and this server only reads", "rewrite it as a SELECT that shows the rows"),
    "UpdateStmt": ("UPDATE writes data and this server only reads", "rewrite it as a SELECT that shows the rows"),
    "DeleteStmt": ("DELETE writes data and this server only reads", "rewrite it as a SELECT that shows the rows"),
    "MergeStmt": ("MERGE writes data and this server only reads", "rewrite it as a SELECT that shows the rows"),
    "CopyStmt": ("COPY is not accepted", "use a SELECT; results come back as rows"),
    "CreateTableAsStmt": (
        "CREATE TABLE AS / SELECT INTO creates a table and this server only reads",
        "drop the INTO / CREATE TABLE part and run the SELECT",
    ),
    "DoStmt": ("DO runs procedural code and is not accepted", "write the logic as one SELECT (CTEs help)"),
    "CallStmt": ("CALL runs a procedure and is not accepted", "write the logic as one SELECT"),
    "PrepareStmt": ("PREPARE is not accepted", "send the SELECT itself; pass values as bound parameters"),
    "ExecuteStmt": ("EXECUTE is not accepted", "send the SELECT itself; pass values as bound parameters"),
    "DeallocateStmt": ("DEALLOCATE is not accepted", _HINT_ONE_SELECT),
    "DeclareCursorStmt": ("cursors are not accepted", "send the SELECT itself; the server streams and caps rows"),
    "FetchStmt": ("cursors are not accepted", "send the SELECT itself; the server streams and caps rows"),
    "ClosePortalStmt": ("cursors are not accepted", "send the SELECT itself; the server streams and caps rows"),
    "LockStmt": ("LOCK is not accepted", "send the SELECT alone; reads need no explicit lock"),
    "ListenStmt": ("LISTEN is not accepted", _HINT_ONE_SELECT),
    "UnlistenStmt": ("UNLISTEN is not accepted", _HINT_ONE_SELECT),
    "NotifyStmt": ("NOTIFY is not accepted", _HINT_ONE_SELECT),
    "VacuumStmt": (
        "VACUUM and ANALYZE maintain tables and are not accepted",
        "read statistics from pg_stat_user_tables or pg_stats with a SELECT",
    ),
    "DiscardStmt": ("DISCARD is not accepted", "send the SELECT alone: sessions are reset between calls"),
    "LoadStmt": ("LOAD is not accepted", _HINT_ONE_SELECT),
    "CheckPointStmt": ("CHECKPOINT is not accepted", _HINT_ONE_SELECT),
}

# Nodes a read-only SELECT may contain, as the raw parser builds them.
_ALLOWED_NODES = frozenset(
    {
        "A_ArrayExpr", "A_Const", "A_Expr", "A_Indices", "A_Indirection", "A_Star", "Alias", "BitString",
        "BoolExpr", "Boolean", "BooleanTest", "CTECycleClause", "CTESearchClause", "CaseExpr", "CaseWhen",
        "CoalesceExpr", "CollateClause", "ColumnDef", "ColumnRef", "CommonTableExpr", "Float", "FuncCall",
        "GroupingFunc", "GroupingSet", "Integer", "JoinExpr", "JsonAggConstructor", "JsonArgument",
        "JsonArrayAgg", "JsonArrayConstructor", "JsonArrayQueryConstructor", "JsonBehavior", "JsonFormat",
        "JsonFuncExpr", "JsonIsPredicate", "JsonKeyValue", "JsonObjectAgg", "JsonObjectConstructor",
        "JsonOutput", "JsonParseExpr", "JsonReturning", "JsonScalarExpr", "JsonSerializeExpr", "JsonTable",
        "JsonTableColumn", "JsonTablePathSpec", "JsonValueExpr", "MinMaxExpr", "NamedArgExpr", "NullTest",
        "ParamRef", "RangeFunction", "RangeSubselect", "RangeTableFunc", "RangeTableFuncCol",
        "RangeTableSample", "RangeVar", "ResTarget", "RowExpr", "SQLValueFunction", "SelectStmt", "SortBy",
        "String", "SubLink", "TypeCast", "TypeName", "WindowDef", "WithClause", "XmlExpr", "XmlSerialize",
    }
)  # fmt: skip

_WRITE_STATEMENTS = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")

# A_Expr kinds whose `name` is not an operator: BETWEEN runs >= and <=.
_BETWEEN_OPERATORS = ((">=",), ("<=",))


def _names(items: Sequence[Any] | None) -> tuple[str, ...]:
    return tuple(str(item.sval) for item in items or () if isinstance(item, ast.String))


def _refused(refusal: Refusal) -> QueryRejected:
    return QueryRejected(refusal.rule, refusal.reason, refusal.hint)


def _call_arity(call: ast.FuncCall) -> int:
    if call.agg_star:
        return 0
    count = len(call.args or ())
    if call.agg_within_group:
        count += len(call.agg_order or ())
    return count


def _check_statement(statement: ast.Node | None, policy: FunctionPolicy) -> None:
    """Walk one statement's whole tree; raise QueryRejected unless it is a read the policy allows. (No caller
    passes None, which pglast's types allow: libpg_query returns no statement for `;`, EXPLAIN requires one and
    an empty BEGIN ATOMIC body is skipped; None would be refused as not a SELECT.)"""
    statement_type = type(statement).__name__
    if not isinstance(statement, ast.SelectStmt):
        what, hint = _STATEMENT_ADVICE.get(
            statement_type, (f"{statement_type.removesuffix('Stmt')} statements change the database", _HINT_ONE_SELECT)
        )
        raise QueryRejected("statement_type", what, hint)
    _walk(statement, policy)


def _nodes(root: Any) -> Iterator[ast.Node]:
    """Every pglast node below and including `root` (a node, or a tuple or list of them), depth first."""
    stack: list[Any] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            stack.extend(item)
            continue
        if not isinstance(item, ast.Node):
            continue
        yield item
        for slot in vars(type(item))["__slots__"]:  # each pglast node class declares all of its own fields
            value = getattr(item, slot, None)
            if isinstance(value, (ast.Node, tuple, list)):
                stack.append(value)


def _walk(root: ast.Node, policy: FunctionPolicy) -> None:
    """Check every node below and including `root`; raise QueryRejected at the first refused one."""
    for node in _nodes(root):
        _check_node(node, policy)


def _check_node(node: ast.Node, policy: FunctionPolicy) -> None:
    name = type(node).__name__
    if isinstance(node, ast.LockingClause):
        raise QueryRejected(
            "locking_clause",
            "FOR UPDATE / FOR SHARE / FOR [NO] KEY ... lock rows, and this server only reads",
            "remove the locking clause; a plain SELECT sees a consistent snapshot",
        )
    if isinstance(node, ast.IntoClause):
        raise QueryRejected(
            "into_clause", "SELECT ... INTO creates a table, and this server only reads", "remove the INTO clause"
        )
    if isinstance(node, ast.CommonTableExpr) and type(node.ctequery).__name__ in _WRITE_STATEMENTS:
        command = type(node.ctequery).__name__.removesuffix("Stmt").upper()
        raise QueryRejected(
            "data_modifying_cte",
            f"the WITH query {node.ctename!r} writes data: it is {command}",
            "make every WITH query a SELECT",
        )
    if name not in _ALLOWED_NODES:  # a statement inside a SELECT parses only as a WITH query, checked above
        raise QueryRejected(
            "node_type",
            f"the query uses {name}, which is outside the read-only SQL this server accepts",
            "rewrite it with plain SELECT syntax",
        )
    refusal: Refusal | None = None
    if isinstance(node, ast.FuncCall):
        refusal = policy.check_call(_names(node.funcname), _call_arity(node))
    elif isinstance(node, ast.A_Expr):
        if node.kind in (
            A_Expr_Kind.AEXPR_BETWEEN,
            A_Expr_Kind.AEXPR_NOT_BETWEEN,
            A_Expr_Kind.AEXPR_BETWEEN_SYM,
            A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
        ):
            for operator in _BETWEEN_OPERATORS:
                refusal = refusal or policy.check_operator(operator)
        else:
            refusal = policy.check_operator(_names(node.name))
    elif isinstance(node, ast.SubLink) and node.operName:
        refusal = policy.check_operator(_names(node.operName))
    elif isinstance(node, ast.SortBy) and node.useOp:
        refusal = policy.check_operator(_names(node.useOp))
    elif isinstance(node, ast.TypeName) and node.names:
        refusal = policy.check_type(_names(node.names))
    if refusal is not None:
        raise _refused(refusal)


# -- EXPLAIN ------------------------------------------------------------------------------------------------


def _is_off(option: ast.DefElem) -> bool:
    """Whether an EXPLAIN option is explicitly off (`0`, `false`, `off`, `none`); without a value it is on.
    Any other value counts as on: PostgreSQL refuses what it cannot read as a boolean, and whatever it might
    read as true must not slip through as false."""
    value = option.arg
    if isinstance(value, ast.Integer):
        return value.ival == 0
    if isinstance(value, ast.String):
        return str(value.sval).lower() in _OFF_VALUES
    return False


def _check_explain(statement: ast.ExplainStmt, policy: FunctionPolicy, explain_analyze: bool) -> None:
    """Check the statement an EXPLAIN explains, then its options (DefElems); raise QueryRejected if refused."""
    options: list[ast.DefElem] = list(statement.options or ())
    _check_statement(statement.query, policy)  # what is explained first: refused whatever the options say
    known = ", ".join(sorted(name.upper() for name in EXPLAIN_OPTIONS))
    for option in options:
        if option.defname not in EXPLAIN_OPTIONS:
            raise QueryRejected(
                "explain_option",
                f"EXPLAIN option {option.defname!r} is not one this server accepts",
                f"use only {known}",
            )
    analyze = any(option.defname == "analyze" and not _is_off(option) for option in options)
    if analyze and not explain_analyze:
        raise QueryRejected(
            "explain_analyze",
            "EXPLAIN ANALYZE runs the statement, and this server's operator does not allow it "
            "(MCP_ALLOW_EXPLAIN_ANALYZE=false)",
            "drop ANALYZE (and SERIALIZE, WAL, TIMING) to get the estimated plan",
        )
    measuring = sorted(
        {option.defname.upper() for option in options if option.defname in _EXECUTION_OPTIONS and not _is_off(option)}
    )
    if measuring and not analyze:
        raise QueryRejected(
            "explain_option",
            f"EXPLAIN option {', '.join(measuring)} measures an execution, and this EXPLAIN has no ANALYZE",
            f"drop {', '.join(measuring)}" + (", or add ANALYZE" if explain_analyze else ""),
        )


# -- the entry point ----------------------------------------------------------------------------------------


def validate(sql: str, policy: FunctionPolicy, layers: Layers, *, explain_analyze: bool = False) -> ValidatedQuery:
    """Check `sql` with the layers that are on; return it unchanged, or raise QueryRejected.

    ONE alone parses and counts statements; AST alone checks each statement (so it stops a stacked write
    even when ONE is off); with both off the text is passed through with only a best-effort fingerprint.
    `explain_analyze` is the operator's MCP_ALLOW_EXPLAIN_ANALYZE: whether an EXPLAIN may run its statement.
    """
    text = _check_text(sql)
    if not (layers.one or layers.ast):
        return ValidatedQuery(text, _fingerprint(text), "unchecked")
    statements = _parse(text)
    try:
        return _check_statements(text, statements, policy, layers, explain_analyze)
    except QueryRejected as exc:
        exc.fingerprint = _fingerprint(text)
        raise


def _kind(statement: ast.Node | None) -> str:
    if isinstance(statement, ast.SelectStmt):
        return "values" if statement.valuesLists else "select"
    return "explain" if isinstance(statement, ast.ExplainStmt) else "unchecked"


def _check_statements(
    text: str, statements: tuple[ast.RawStmt, ...], policy: FunctionPolicy, layers: Layers, explain_analyze: bool
) -> ValidatedQuery:
    if not statements:
        raise QueryRejected("not_single_statement", "the query holds no statement, only comments", _HINT_ONE_SELECT)
    if layers.one and len(statements) != 1:
        raise QueryRejected(
            "not_single_statement",
            f"the query holds {len(statements)} statements",
            "send exactly one statement, without a second one after a semicolon",
        )
    if layers.ast:
        for raw in statements:
            if isinstance(raw.stmt, ast.ExplainStmt):
                _check_explain(raw.stmt, policy, explain_analyze)
            else:
                _check_statement(raw.stmt, policy)
    qualifiers, relations = references(statements)
    return ValidatedQuery(text, _fingerprint(text), _kind(statements[0].stmt), len(statements), qualifiers, relations)


def references(root: Any) -> tuple[frozenset[str], frozenset[str]]:
    """The schemas written before a relation, function or type name anywhere below `root`, and the names of the
    relations it reads (for a caller limited to some schemas: `pgmcp.scope`)."""
    qualifiers: set[str] = set()
    relations: set[str] = set()
    for item in _nodes(root):
        if isinstance(item, ast.RangeVar):
            relations.add(item.relname or "")
            if item.schemaname:
                qualifiers.add(item.schemaname)
        elif isinstance(item, (ast.FuncCall, ast.TypeName)):
            parts = [part.sval or "" for part in (item.funcname if isinstance(item, ast.FuncCall) else item.names) or ()
                     if isinstance(part, ast.String)]  # fmt: skip
            if len(parts) > 1:
                qualifiers.add(parts[-2])
    return frozenset(qualifiers), frozenset(relations)


# -- user-written SQL functions ----------------------------------------------------------------------------


def _body_statements(definition: str) -> tuple[Any, ...]:
    """The statements of a CREATE FUNCTION text: a BEGIN ATOMIC list, a RETURN, or the quoted AS body."""
    (raw,) = _parse(definition)
    create = raw.stmt
    if not isinstance(create, ast.CreateFunctionStmt):
        raise QueryRejected("syntax", "its definition is not a CREATE FUNCTION statement", _HINT_ONE_SELECT)
    if create.sql_body is not None:
        if isinstance(create.sql_body, ast.ReturnStmt):
            return (create.sql_body,)
        # an empty BEGIN ATOMIC END body parses as one None block
        return tuple(statement for block in create.sql_body if block is not None for statement in block)
    bodies = [option.arg for option in create.options or () if option.defname == "as"]
    text = "".join(str(part.sval) for arg in bodies for part in arg if isinstance(part, ast.String))
    return tuple(raw.stmt for raw in _parse(text))


def _body_problem(definition: str, policy: FunctionPolicy) -> str | None:
    """Why the body of one SQL function fails the AST checks against `policy`, or None when it only reads."""
    try:
        for statement in _body_statements(definition):
            if isinstance(statement, ast.ReturnStmt):
                if statement.returnval is not None:
                    _walk(statement.returnval, policy)
            else:
                _check_statement(statement, policy)
    except QueryRejected as exc:
        return f"has a SQL body this server refuses ({exc.rule}: {exc.what})"
    return None


def vet_function_bodies(policy: FunctionPolicy) -> FunctionPolicy:
    """The policy with each user-written SQL function believed exactly when its body passes the AST checks.

    Bodies call one another, recursion included, so this is a greatest fixpoint: start by believing every
    SQL body, refuse the ones that fail, and check again until nothing changes. A body that calls a refused
    function fails in a later round; what is left believed calls only what is believed.
    """
    bodied = policy.sql_bodies()
    if not bodied:
        return policy
    verdicts: dict[str, str | None] = dict.fromkeys(bodied)
    while True:
        current = policy.with_distrust(verdicts)
        refused = {
            signature: problem
            for signature, definition in bodied.items()
            if verdicts[signature] is None and (problem := _body_problem(definition, current)) is not None
        }
        if not refused:
            logger.info(
                "checked %d user-written SQL functions: %d refused (%s)",
                len(bodied),
                sum(verdict is not None for verdict in verdicts.values()),
                ", ".join(sorted(signature for signature, verdict in verdicts.items() if verdict)) or "none",
            )
            return current
        verdicts.update(refused)
