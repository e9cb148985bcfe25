"""The guard's function policy: what the database can run, read from its own catalogue, and which of it a
model's query may call.

The AST layer (`pgmcp.guard`) asks this module about every function, operator and type a query names.
The answer comes from the server's own `pg_proc`, `pg_operator`, `pg_type` and `pg_cast`, loaded once
with `load_function_policy()` into a `FunctionPolicy`, plus fixed rules:

- a call is allowed only when *every* overload it could resolve to is IMMUTABLE or STABLE, so that
  PostgreSQL's own overload resolution can never pick a volatile sibling behind the guard's back;
- VOLATILE functions are refused, except the short `ALLOWED_VOLATILE` list: they are volatile only because
  their result changes from call to call (random numbers, the wall clock, on-disk sizes); they write
  nothing, signal no one, take no lock beyond AccessShare, and leave no state behind in the session;
- the deny-list (`DENIED_FUNCTIONS`, `DENIED_PREFIXES`) is refused whatever its volatility label says:
  file and large-object access, signals to backends, advisory locks, settings, outbound connections,
  notifications, catalogue and sequence writers, transaction-ID assignment, and the helpers that run SQL
  passed as a string (their inner SQL is invisible to the guard). Some of these are marked STABLE in
  the catalogue (`txid_current()` assigns a transaction ID even in a read-only transaction; `table_to_xml`
  runs a query of its own; tablefunc's `crosstab()` runs any SQL text), which is why the list exists next
  to the volatility gate;
- SECURITY DEFINER functions are refused: they run with their owner's privileges, around the ROLE layer;
- a volatility label is the author's promise, not something PostgreSQL enforces on what a function calls: a
  STABLE plpgsql function may call `pg_advisory_lock()` or `pg_notify()`. Labels are believed for the
  functions of initdb and of installed extensions (their code is the server's and the extension's own) and for
  C functions (only a superuser can create them). A function a database user wrote is believed only when it
  is LANGUAGE sql and its body passes the same AST checks as a query (`pgmcp.guard.vet_function_bodies`);
  one in any other language (plpgsql, plpython, ...), or with SET clauses of its own, is refused.

Operators and casts reach functions without call syntax, so they go through the same gate: an operator
is allowed only when every operator of that name visible to the query is backed by an allowed function,
and a cast to a type only when the type's input function and every cast function into it are allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_VOLATILE",
    "DENIED_FUNCTIONS",
    "DENIED_PREFIXES",
    "FunctionPolicy",
    "FunctionInfo",
    "OperatorInfo",
    "Refusal",
    "TypeInfo",
    "load_function_policy",
]

VOLATILITY_NAMES = {"i": "immutable", "s": "stable", "v": "volatile"}
KIND_NAMES = {"f": "function", "a": "aggregate", "w": "window", "p": "procedure"}

# Volatile, yet harmless for a read-only analyst: no writes, no locks beyond AccessShare, no session
# state left behind, no waiting. `setseed()` is not here: it changes the session's random state, which
# would leak into the next call on the same pooled connection.
ALLOWED_VOLATILE: frozenset[str] = frozenset(
    {
        # randomness: sampling, shuffling, synthetic ids
        "random",
        "random_normal",
        "array_shuffle",
        "array_sample",
        "gen_random_uuid",
        "uuidv4",
        "uuidv7",
        # the wall clock (now() and friends are already stable)
        "clock_timestamp",
        "timeofday",
        # on-disk sizes, for "which table is biggest" questions
        "pg_relation_size",
        "pg_total_relation_size",
        "pg_table_size",
        "pg_indexes_size",
        "pg_database_size",
        "pg_tablespace_size",
        # where the server reads from: a standby or the primary, and how far behind replay is
        "pg_is_in_recovery",
        "pg_last_wal_receive_lsn",
        "pg_last_wal_replay_lsn",
        "pg_last_xact_replay_timestamp",
        "pg_is_wal_replay_paused",
        "pg_get_wal_replay_pause_state",
        "pg_current_wal_lsn",
        "pg_current_wal_insert_lsn",
        "pg_current_wal_flush_lsn",
    }
)

_HINT_DATA_ONLY = "only table data is reachable: query the tables instead"
_HINT_REMOVE = "remove the call; this server only reads"
_HINT_SQL_TEXT = (
    "write that SQL directly as your query (it is validated like any other); build XML or text output "
    "with xmlelement(), xmlforest(), json_agg() or string_agg() around it"
)

# name -> (what it does that a read-only query must not, what to write instead)
DENIED_FUNCTIONS: dict[str, tuple[str, str]] = {
    # files on the database server
    "pg_read_file": ("reads files on the database server", _HINT_DATA_ONLY),
    "pg_read_binary_file": ("reads files on the database server", _HINT_DATA_ONLY),
    "pg_stat_file": ("inspects files on the database server", _HINT_DATA_ONLY),
    "pg_file_write": ("writes files on the database server", _HINT_REMOVE),
    "pg_file_rename": ("renames files on the database server", _HINT_REMOVE),
    "pg_file_unlink": ("deletes files on the database server", _HINT_REMOVE),
    "pg_file_sync": ("touches files on the database server", _HINT_REMOVE),
    "pg_logdir_ls": ("lists the server's log directory", _HINT_DATA_ONLY),
    "pg_current_logfile": ("reveals the server's log files", _HINT_DATA_ONLY),
    # large objects: server files in and out, and writes that bypass table privileges
    "loread": ("reads large objects", _HINT_DATA_ONLY),
    "lowrite": ("writes large objects", _HINT_REMOVE),
    # signals and server administration
    "pg_terminate_backend": ("terminates other database sessions", _HINT_REMOVE),
    "pg_cancel_backend": ("cancels queries of other database sessions", _HINT_REMOVE),
    "pg_reload_conf": ("reloads the server configuration", _HINT_REMOVE),
    "pg_rotate_logfile": ("rotates the server log", _HINT_REMOVE),
    "pg_promote": ("promotes a standby server", _HINT_REMOVE),
    "pg_switch_wal": ("forces a WAL segment switch", _HINT_REMOVE),
    "pg_create_restore_point": ("writes a restore point to the WAL", _HINT_REMOVE),
    "pg_logical_emit_message": ("writes messages to the WAL", _HINT_REMOVE),
    "pg_export_snapshot": ("exports a snapshot for other sessions", _HINT_REMOVE),
    "pg_import_system_collations": ("writes to the system catalogue, even in a read-only transaction", _HINT_REMOVE),
    "pg_nextoid": ("consumes object identifiers", _HINT_REMOVE),
    "pg_stop_making_pinned_objects": ("changes server state", _HINT_REMOVE),
    "pg_extension_config_dump": ("changes extension metadata", _HINT_REMOVE),
    "brin_summarize_new_values": ("writes index summaries", _HINT_REMOVE),
    "brin_summarize_range": ("writes index summaries", _HINT_REMOVE),
    "brin_desummarize_range": ("writes index summaries", _HINT_REMOVE),
    "gin_clean_pending_list": ("writes to an index", _HINT_REMOVE),
    "pg_stat_force_next_flush": ("changes statistics collection", _HINT_REMOVE),
    # settings: timeouts and limits are the server's, not the query's
    "set_config": (
        "changes settings, and the server's timeouts and limits are not negotiable",
        "remove the call; read a setting with current_setting('name') instead",
    ),
    "setseed": (
        "changes the session's random state, which outlives the query",
        "remove the call; random() works without a seed",
    ),
    # sessions that live outside this read-only transaction
    "pg_notify": ("sends notifications to other sessions", _HINT_REMOVE),
    # sequences and transaction IDs: writes to the cluster
    "nextval": ("advances a sequence, which is a write", "read the current value with SELECT last_value FROM <seq>"),
    "setval": ("sets a sequence, which is a write", _HINT_REMOVE),
    "txid_current": (
        "assigns a transaction ID, a write to the cluster, even in a read-only transaction",
        "use txid_current_if_assigned() or pg_current_snapshot() to inspect transaction state",
    ),
    "pg_current_xact_id": (
        "assigns a transaction ID, a write to the cluster, even in a read-only transaction",
        "use pg_current_xact_id_if_assigned() or pg_current_snapshot() to inspect transaction state",
    ),
    # SQL passed as text: the guard cannot see what it would run
    "query_to_xml": ("runs SQL passed as a string, hidden from validation", _HINT_SQL_TEXT),
    "query_to_xmlschema": ("runs SQL passed as a string, hidden from validation", _HINT_SQL_TEXT),
    "query_to_xml_and_xmlschema": ("runs SQL passed as a string, hidden from validation", _HINT_SQL_TEXT),
    "cursor_to_xml": ("reads from a cursor by name, hidden from validation", _HINT_SQL_TEXT),
    "cursor_to_xmlschema": ("reads from a cursor by name, hidden from validation", _HINT_SQL_TEXT),
    "table_to_xml": ("runs a query of its own over a whole table", _HINT_SQL_TEXT),
    "table_to_xmlschema": ("runs a query of its own over a whole table", _HINT_SQL_TEXT),
    "table_to_xml_and_xmlschema": ("runs a query of its own over a whole table", _HINT_SQL_TEXT),
    "schema_to_xml": ("runs queries of its own over a whole schema", _HINT_SQL_TEXT),
    "schema_to_xmlschema": ("runs queries of its own over a whole schema", _HINT_SQL_TEXT),
    "schema_to_xml_and_xmlschema": ("runs queries of its own over a whole schema", _HINT_SQL_TEXT),
    "database_to_xml": ("runs queries of its own over the whole database", _HINT_SQL_TEXT),
    "database_to_xmlschema": ("runs queries of its own over the whole database", _HINT_SQL_TEXT),
    "database_to_xml_and_xmlschema": ("runs queries of its own over the whole database", _HINT_SQL_TEXT),
    # tablefunc: STABLE, yet they run the SQL text they are given (a session advisory lock taken inside
    # crosstab('select ... pg_advisory_lock(7)') outlives the call)
    "connectby": ("runs a query built from table and column names passed as strings", _HINT_SQL_TEXT),
    "ts_stat": (
        "runs SQL passed as a string, hidden from validation",
        "compute word statistics with unnest(tsvector_to_array(...)) and GROUP BY in your query",
    ),
}

# Families denied by prefix, in every schema (extensions install some of them where they like).
DENIED_PREFIXES: dict[str, tuple[str, str]] = {
    "pg_ls_": ("lists directories on the database server", _HINT_DATA_ONLY),
    "lo_": ("reads or writes large objects, or server files through them", _HINT_REMOVE),
    "pg_advisory_": (
        "takes advisory locks, which outlive the query and can block other applications",
        _HINT_REMOVE,
    ),
    "pg_try_advisory_": (
        "takes advisory locks, which outlive the query and can block other applications",
        _HINT_REMOVE,
    ),
    "pg_sleep": ("waits on purpose while holding a connection", "remove the call: nothing here needs to wait"),
    "crosstab": (
        "runs SQL passed as a string, hidden from validation",
        "pivot in your query instead: count(*) FILTER (WHERE ...) or sum(CASE WHEN ... END) per column",
    ),
    "dblink": (
        "opens a connection to a database outside this read-only transaction",
        "query this database's tables directly",
    ),
    "pg_stat_reset": ("resets statistics other people rely on", _HINT_REMOVE),
    "pg_stat_statements_reset": ("resets statistics other people rely on", _HINT_REMOVE),
    "pg_replication_origin_": ("changes replication state", _HINT_REMOVE),
    "pg_create_": ("creates replication slots or restore points", _HINT_REMOVE),
    "pg_drop_replication_slot": ("drops a replication slot", _HINT_REMOVE),
    "pg_copy_": ("copies replication slots", _HINT_REMOVE),
    "pg_logical_slot_": ("consumes or inspects replication slots", _HINT_REMOVE),
    "pg_replication_slot_": ("moves a replication slot", _HINT_REMOVE),
    "pg_sync_replication_slots": ("changes replication slots", _HINT_REMOVE),
    "pg_wal_replay_": ("pauses or resumes WAL replay", _HINT_REMOVE),
    "pg_backup_": ("starts or stops a base backup", _HINT_REMOVE),
    "pg_restore_": ("writes planner statistics", _HINT_REMOVE),
    "pg_clear_": ("clears planner statistics", _HINT_REMOVE),
    "pg_log_": ("writes to the server log", _HINT_REMOVE),
    "binary_upgrade_": ("is for pg_upgrade only and rewrites catalogue state", _HINT_REMOVE),
}

# (name, number of arguments) -> reason, for one overload of an otherwise harmless name: the
# two-argument ts_rewrite(query, 'SELECT ...') runs SQL text; the three-argument form is pure.
DENIED_OVERLOADS: dict[tuple[str, int], tuple[str, str]] = {
    ("ts_rewrite", 2): (
        "runs SQL passed as a string, hidden from validation",
        "use ts_rewrite(query, target, substitute)",
    ),
}


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """One `pg_proc` row, reduced to what the guard needs."""

    schema: str
    name: str
    volatility: str  # "i" immutable, "s" stable, "v" volatile (pg_proc.provolatile)
    argument_types: tuple[str, ...] = ()
    kind: str = "f"  # "f" function, "a" aggregate, "w" window, "p" procedure (pg_proc.prokind)
    defaults: int = 0  # how many trailing arguments have defaults
    variadic: bool = False
    security_definer: bool = False
    # Why the volatility label cannot be believed (see the module docstring), or None. Set by the loader
    # for user-written functions, and cleared by `pgmcp.guard.vet_function_bodies` for a clean SQL body.
    distrust: str | None = None
    # The CREATE FUNCTION text of a user-written LANGUAGE sql function, for the guard to check its body.
    definition: str | None = None

    def __post_init__(self) -> None:
        if self.volatility not in VOLATILITY_NAMES:
            raise ValueError(f"volatility of {self.name} must be one of i, s, v, not {self.volatility!r}")
        if self.kind not in KIND_NAMES:
            raise ValueError(f"kind of {self.name} must be one of f, a, w, p, not {self.kind!r}")

    @property
    def signature(self) -> str:
        return f"{self.schema}.{self.name}({', '.join(self.argument_types)})"

    def accepts(self, count: int) -> bool:
        """Whether a call with `count` arguments could resolve to this overload."""
        required = len(self.argument_types) - self.defaults
        if self.variadic:
            return count >= required - 1
        return required <= count <= len(self.argument_types)


@dataclass(frozen=True, slots=True)
class OperatorInfo:
    """One `pg_operator` row and the function that implements it."""

    schema: str
    name: str
    left_type: str | None
    right_type: str | None
    function: FunctionInfo


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """One `pg_type` row and the functions a cast to it may run: its input function and cast functions."""

    schema: str
    name: str
    functions: tuple[FunctionInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a function may not be called: a guard rule id, and the text for the model."""

    rule: str  # "function_denied" | "function_volatile" | "function_unknown"
    reason: str
    hint: str


def _split_name(parts: Sequence[str]) -> tuple[str | None, str]:
    """(schema or None, name) from a possibly qualified name; `db.schema.name` keeps `schema`."""
    if not parts:
        raise ValueError("empty object name")
    if len(parts) == 1:
        return None, parts[0]
    return parts[-2], parts[-1]


def _denial(name: str, count: int | None) -> tuple[str, str] | None:
    """(what it does, what to write instead) when `name` is on the deny-list, else None."""
    denied = DENIED_FUNCTIONS.get(name)
    if denied is None:
        denied = next((entry for prefix, entry in DENIED_PREFIXES.items() if name.startswith(prefix)), None)
    if denied is None and count is not None:
        denied = DENIED_OVERLOADS.get((name, count))
    return denied


def judge_function(function: FunctionInfo, count: int | None = None) -> Refusal | None:
    """The policy for one overload: None when a read-only query may call it."""
    denied = _denial(function.name, count)
    if denied is not None:
        return Refusal("function_denied", f"{function.signature} {denied[0]}", denied[1])
    if function.security_definer:
        return Refusal(
            "function_denied",
            f"{function.signature} is SECURITY DEFINER: it runs with its owner's privileges, not the reader's",
            "ask the operator to expose what you need through a view the reader role may SELECT from",
        )
    if function.distrust is not None:
        return Refusal(
            "function_denied",
            f"{function.signature} {function.distrust}",
            "ask the operator to rewrite it as a LANGUAGE sql function whose body only reads, or to expose "
            "the data through a view",
        )
    if function.volatility == "v" and function.name not in ALLOWED_VOLATILE:
        return Refusal(
            "function_volatile",
            f"{function.signature} is VOLATILE: it may change state, so a read-only query may not call it",
            "remove the call, or use an immutable or stable function that computes the same thing",
        )
    return None


@dataclass(frozen=True, repr=False)
class FunctionPolicy:
    """Functions, operators and types of one database, as the reader role sees them, plus `search_path`, and the
    rules that say which of them a query may reach (`check_call`, `check_operator`, `check_type`)."""

    functions: tuple[FunctionInfo, ...]
    operators: tuple[OperatorInfo, ...] = ()
    types: tuple[TypeInfo, ...] = ()
    search_path: tuple[str, ...] = ("pg_catalog", "public")
    _functions_by_name: dict[str, tuple[FunctionInfo, ...]] = field(init=False, repr=False, compare=False)
    _operators_by_name: dict[str, tuple[OperatorInfo, ...]] = field(init=False, repr=False, compare=False)
    _types_by_name: dict[str, tuple[TypeInfo, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.search_path:
            raise ValueError("search_path must name at least one schema (pg_catalog is always searched)")
        object.__setattr__(self, "_functions_by_name", _index(self.functions))
        object.__setattr__(self, "_operators_by_name", _index(self.operators))
        object.__setattr__(self, "_types_by_name", _index(self.types))

    @classmethod
    def from_rows(
        cls,
        functions: Iterable[FunctionInfo | Sequence[Any]],
        operators: Iterable[OperatorInfo] = (),
        types: Iterable[TypeInfo] = (),
        *,
        search_path: Sequence[str] = ("pg_catalog", "public"),
    ) -> FunctionPolicy:
        """A policy from plain rows, e.g. `("pg_catalog", "now", "s")`; for tests and tools."""
        infos = tuple(row if isinstance(row, FunctionInfo) else FunctionInfo(*row) for row in functions)
        return cls(infos, tuple(operators), tuple(types), tuple(search_path))

    def __len__(self) -> int:
        return len(self.functions)

    def __repr__(self) -> str:
        return (
            f"FunctionPolicy({len(self.functions)} functions, {len(self.operators)} operators, "
            f"{len(self.types)} types, search_path={','.join(self.search_path)})"
        )

    def _visible(self, items: tuple[Any, ...], schema: str | None) -> tuple[Any, ...]:
        if schema is not None:
            return tuple(item for item in items if item.schema == schema)
        return tuple(item for item in items if item.schema in self.search_path)

    def function_candidates(self, parts: Sequence[str], count: int | None = None) -> tuple[FunctionInfo, ...]:
        """Every overload a call of `parts` with `count` arguments could resolve to.

        Overloads whose arity cannot match are dropped; when none matches, all overloads of the name
        are returned, so the caller errs on the side of judging too many rather than too few.
        """
        schema, name = _split_name(parts)
        visible = self._visible(self._functions_by_name.get(name, ()), schema)
        if count is None:
            return visible
        matching = tuple(function for function in visible if function.accepts(count))
        return matching or visible

    def operator_candidates(self, parts: Sequence[str]) -> tuple[OperatorInfo, ...]:
        schema, name = _split_name(parts)
        return self._visible(self._operators_by_name.get(name, ()), schema)

    def type_candidates(self, parts: Sequence[str]) -> tuple[TypeInfo, ...]:
        schema, name = _split_name(parts)
        return self._visible(self._types_by_name.get(name, ()), schema)

    def sql_bodies(self) -> dict[str, str]:
        """The definition of each user-written SQL function whose body the guard checks (those loaded with one),
        by signature."""
        return {
            function.signature: function.definition for function in self.functions if function.definition is not None
        }

    def with_distrust(self, verdicts: Mapping[str, str | None]) -> FunctionPolicy:
        """A copy in which each function whose `signature` is in `verdicts` has that `distrust` instead,
        wherever it appears: called by name, behind an operator or as a type's input or cast function."""

        def judged(function: FunctionInfo) -> FunctionInfo:
            if function.signature not in verdicts:
                return function
            return replace(function, distrust=verdicts[function.signature])

        return FunctionPolicy(
            tuple(judged(function) for function in self.functions),
            tuple(replace(operator, function=judged(operator.function)) for operator in self.operators),
            tuple(
                replace(type_info, functions=tuple(judged(function) for function in type_info.functions))
                for type_info in self.types
            ),
            self.search_path,
        )

    # -- the policy, applied to names as a query writes them ------------------------------------------

    def check_call(self, parts: Sequence[str], count: int | None) -> Refusal | None:
        """None when a call of `parts` with `count` arguments is allowed, else why not."""
        shown = ".".join(parts)
        candidates = self.function_candidates(parts, count)
        if not candidates:
            # `int4(x)`-style casts use a type's name as a function name
            if count == 1 and self.type_candidates(parts):
                return self.check_type(parts)
            denied = _denial(_split_name(parts)[1], count)
            if denied is not None:
                return Refusal("function_denied", f"{shown}() {denied[0]}", denied[1])
            return Refusal(
                "function_unknown",
                f"function {shown}() does not exist in the schemas this server can call "
                f"({', '.join(self.search_path)}, or a schema written before the name)",
                "check the name with the search_schema tool or qualify it with its schema, e.g. schema.function()",
            )
        for function in candidates:
            refusal = judge_function(function, count)
            if refusal is not None:
                return refusal
        return None

    def check_operator(self, parts: Sequence[str]) -> Refusal | None:
        """None when every operator of that name visible to the query runs an allowed function."""
        for operator in self.operator_candidates(parts):
            refusal = judge_function(operator.function)
            if refusal is not None:
                return Refusal(
                    refusal.rule,
                    f"operator {'.'.join(parts)} is implemented by {refusal.reason}",
                    refusal.hint,
                )
        return None

    def check_type(self, parts: Sequence[str]) -> Refusal | None:
        """None when a cast to the type cannot run a refused input or cast function."""
        for type_info in self.type_candidates(parts):
            for function in type_info.functions:
                refusal = judge_function(function)
                if refusal is not None:
                    return Refusal(
                        refusal.rule,
                        f"a cast to {type_info.schema}.{type_info.name} runs {refusal.reason}",
                        refusal.hint,
                    )
        return None


def _index(items: Iterable[Any]) -> dict[str, tuple[Any, ...]]:
    index: dict[str, list[Any]] = {}
    for item in items:
        index.setdefault(item.name, []).append(item)
    return {name: tuple(group) for name, group in index.items()}


# -- loading from the server ----------------------------------------------------------------------------

# The columns `_function_from` reads, for the pg_proc row aliased `f` (joined to its namespace `fn` and its
# language `fl`). `user_written`: created by a database user, not by initdb (OIDs below FirstNormalObjectId,
# 16384) and not by an extension's script. Only the SQL functions among those need their definition.
_FUNCTION_COLUMNS = """
fn.nspname, f.proname, f.provolatile, f.proargtypes::regtype[]::text[], f.prokind,
f.pronargdefaults, f.provariadic <> 0, f.prosecdef, fl.lanname, f.proconfig IS NOT NULL,
uw.user_written,
CASE WHEN uw.user_written AND fl.lanname = 'sql' AND f.prokind IN ('f', 'p')
     THEN pg_catalog.pg_get_functiondef(f.oid) END
"""

_FUNCTION_JOINS = """
JOIN pg_catalog.pg_namespace fn ON fn.oid = f.pronamespace
JOIN pg_catalog.pg_language fl ON fl.oid = f.prolang
CROSS JOIN LATERAL (
    SELECT f.oid >= 16384 AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = f.oid AND d.deptype = 'e'
    ) AS user_written
) AS uw
"""

_FUNCTIONS_SQL = f"SELECT {_FUNCTION_COLUMNS} FROM pg_catalog.pg_proc f {_FUNCTION_JOINS}"

_OPERATORS_SQL = f"""
SELECT n.nspname, o.oprname, nullif(o.oprleft, 0)::regtype::text, nullif(o.oprright, 0)::regtype::text,
       {_FUNCTION_COLUMNS}
FROM pg_catalog.pg_operator o
JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
JOIN pg_catalog.pg_proc f ON f.oid = o.oprcode
{_FUNCTION_JOINS}
"""

# For each type: its input function, and the function of every cast into it (castfunc 0 = binary or
# I/O coercion, which runs the input function already listed).
_TYPES_SQL = f"""
SELECT tn.nspname, t.typname, {_FUNCTION_COLUMNS}
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
JOIN LATERAL (
    SELECT t.typinput AS fid
    UNION
    SELECT c.castfunc FROM pg_catalog.pg_cast c WHERE c.casttarget = t.oid AND c.castfunc <> 0
) AS reached ON true
JOIN pg_catalog.pg_proc f ON f.oid = reached.fid
{_FUNCTION_JOINS}
ORDER BY tn.nspname, t.typname
"""

_SEARCH_PATH_SQL = "SELECT pg_catalog.current_schemas(true)::text[]"


def _distrust(language: str, has_settings: bool, user_written: bool) -> str | None:
    """Why a function's volatility label cannot be believed as loaded, or None (see the module docstring)."""
    if not user_written or language in ("internal", "c"):
        return None
    if has_settings:
        return "sets configuration of its own (SET ... in its definition), which changes what its body calls"
    if language == "sql":
        # believed only once pgmcp.guard.vet_function_bodies has checked the body
        return "has a SQL body that has not been checked"
    return (
        f"is written in {language}, whose body this server cannot check: its volatility label does not stop it "
        "from calling functions that take locks, send notifications or change settings"
    )


def _function_from(row: Sequence[Any]) -> FunctionInfo:
    (
        schema,
        name,
        volatility,
        argument_types,
        kind,
        defaults,
        variadic,
        security_definer,
        language,
        has_settings,
        user_written,
        definition,
    ) = row
    return FunctionInfo(
        schema,
        name,
        volatility,
        tuple(argument_types or ()),
        kind,
        int(defaults),
        bool(variadic),
        bool(security_definer),
        _distrust(language, bool(has_settings), bool(user_written)),
        # a function with SET clauses stays refused, however clean its body: no definition to vet
        None if has_settings else definition,
    )


async def load_function_policy(conn: psycopg.AsyncConnection[Any]) -> FunctionPolicy:
    """Read functions, operators, types and the search path as `conn`'s role sees them.

    Runs four catalogue queries (a few milliseconds); call it at startup and again whenever the schema
    may have gained functions. Functions created after loading are unknown and so refused, never allowed.
    User-written SQL functions come back distrusted until `pgmcp.guard.vet_function_bodies` checks them.
    """
    async with conn.cursor() as cursor:
        await cursor.execute(_FUNCTIONS_SQL)
        functions = tuple(_function_from(row) for row in await cursor.fetchall())
        await cursor.execute(_OPERATORS_SQL)
        operators = tuple(
            OperatorInfo(row[0], row[1], row[2], row[3], _function_from(row[4:])) for row in await cursor.fetchall()
        )
        await cursor.execute(_TYPES_SQL)
        grouped: dict[tuple[str, str], list[FunctionInfo]] = {}
        for row in await cursor.fetchall():
            grouped.setdefault((row[0], row[1]), []).append(_function_from(row[2:]))
        types = tuple(TypeInfo(schema, name, tuple(reached)) for (schema, name), reached in grouped.items())
        await cursor.execute(_SEARCH_PATH_SQL)
        search_row = await cursor.fetchone()
    # pg_temp is never searched for functions or operators unless a query names it
    search_path = tuple(schema for schema in (search_row[0] if search_row else ()) if not schema.startswith("pg_temp"))
    policy = FunctionPolicy(functions, operators, types, search_path or ("pg_catalog",))
    logger.info(
        "loaded the function policy: %d functions, %d operators, %d types, search_path %s",
        len(functions),
        len(operators),
        len(types),
        ",".join(policy.search_path),
    )
    return policy
