"""The attack corpus of docs/security.md (classes A-D and F), as data.

Each `Attack` says which layers stop it *on their own* (`stops`), verified by running it with only that
layer on (tests/security/test_attacks.py); layers not listed do not stop it alone, and docs/security.md
says why. Textual variants (comments, casing, quoting, Unicode escapes, dollar quoting, nesting) only
matter to the layers that read the text (ONE and AST): the database sees through them by construction.

Placeholders: `{canary}` becomes a fresh file path that must not exist afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from pglast import parser

ALL_LAYER_NAMES = ("role", "ro", "one", "ast", "tmo", "cap", "hyg")


@dataclass(frozen=True)
class Call:
    tool: str
    arguments: dict[str, object]


def query(sql: str, **extra: object) -> Call:
    return Call("query", {"sql": sql, **extra})


@dataclass(frozen=True)
class Attack:
    id: str
    title: str
    calls: tuple[Call, ...]
    stops: frozenset[str]
    rule: str | None = None  # the guard's rule with every layer on; None when the database refuses it
    variants: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()  # names the function-name variants rewrite
    leak: str | None = None  # text that must never appear in any answer
    poisons: bool = False  # compare the next call's session with a fresh one
    notifies: bool = False  # a listener must receive nothing
    errors_when_all_on: bool = True
    residue: bool = False  # leaves session state behind when HYG is off: runs on a private server then

    @property
    def section(self) -> str:
        return self.id[0]


TEXT = ("comment", "line-comment", "lower", "upper", "whitespace", "semicolon")
SELECT_SHAPED = (*TEXT, "nested", "cte", "lateral", "union")
FUNCTION = ("qualified", "quoted", "unicode")
STRINGS = ("dollar",)

WRITE_STOPS = frozenset({"one", "ast", "role"})

CORPUS: tuple[Attack, ...] = (
    # -- A. transaction escape and stacked statements ----------------------------------------------------------
    Attack("A1", "stacked COMMIT then DROP SCHEMA", (query("SELECT 1; COMMIT; DROP SCHEMA shop CASCADE;"),),
           WRITE_STOPS, "not_single_statement", TEXT),
    Attack("A2", "the Datadog proof of concept: COMMIT then INSERT",
           (query("COMMIT; INSERT INTO shop.orders (customer_id, status, placed_at, total, note) "
                  "VALUES (1, 'paid', now(), 666, 'EVIL')"),), WRITE_STOPS, "not_single_statement", TEXT),
    Attack("A3", "ROLLBACK then DROP TABLE", (query("ROLLBACK; DROP TABLE shop.order_items;"),), WRITE_STOPS,
           "not_single_statement", TEXT),
    Attack("A4", "SET TRANSACTION READ WRITE before the first query",
           (query("SET TRANSACTION READ WRITE; DELETE FROM shop.order_items"),), WRITE_STOPS | {"ro"},
           "not_single_statement", TEXT),
    Attack("A5", "nested BEGIN READ WRITE", (query("BEGIN READ WRITE; UPDATE shop.products SET price = 0; COMMIT;"),),
           WRITE_STOPS, "not_single_statement", TEXT),
    Attack("A6", "SET SESSION CHARACTERISTICS poisons the pooled session",
           (query("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"),), frozenset({"ast", "ro", "hyg"}),
           "statement_type", TEXT, poisons=True),
    Attack("A7", "default_transaction_read_only off, COMMIT, DELETE",
           (query("SET default_transaction_read_only = off; COMMIT; DELETE FROM shop.order_items"),), WRITE_STOPS,
           "not_single_statement", TEXT, residue=True),
    Attack("A8a", "block comment before COMMIT", (query("/* hi */ COMMIT; DELETE FROM shop.order_items"),),
           WRITE_STOPS, "not_single_statement", TEXT),
    Attack("A8b", "line comment before COMMIT", (query("-- x\nCOMMIT; DELETE FROM shop.order_items"),), WRITE_STOPS,
           "not_single_statement", TEXT),
    Attack("A8c", "dollar-quoted semicolon", (query("SELECT $$;$$; DELETE FROM shop.order_items"),),
           WRITE_STOPS | {"ro"}, "not_single_statement", TEXT),
    Attack("A8d", "quote inside a comment", (query("SELECT 'a'/*'*/; DELETE FROM shop.order_items;--'"),),
           WRITE_STOPS | {"ro"}, "not_single_statement", TEXT),
    Attack("A8e", "COMMIT hidden after a string with an escaped quote",
           (query("SELECT E'\\';'; COMMIT; DELETE FROM shop.order_items"),), WRITE_STOPS, "not_single_statement",
           TEXT),
    # -- B. writes hidden inside read shapes -------------------------------------------------------------------
    Attack("B9", "DELETE in a CTE", (query("WITH d AS (DELETE FROM shop.order_items RETURNING *) "
                                            "SELECT count(*) FROM d"),),
           frozenset({"ast", "ro", "role"}), "data_modifying_cte", (*TEXT, "nested", "lateral")),
    Attack("B9b", "UPDATE in a nested CTE", (query("SELECT * FROM (WITH u AS (UPDATE shop.products SET price = 0 "
                                                    "RETURNING 1) SELECT count(*) FROM u) s"),),
           # PostgreSQL itself refuses a data-modifying WITH below the top level (0A000), whatever the role and
           # the transaction: RO and ROLE never get to act, so only AST is tested against it
           frozenset({"ast"}), "data_modifying_cte", TEXT),
    Attack("B10a", "SELECT INTO TEMP", (query("SELECT * INTO TEMP stolen FROM shop.customers"),),
           frozenset({"ast", "ro", "role"}), "into_clause", TEXT),
    Attack("B10b", "CREATE TABLE AS", (query("CREATE TABLE shop.stolen AS SELECT * FROM shop.customers"),),
           frozenset({"ast", "ro", "role"}), "statement_type", TEXT),
    Attack("B11a", "EXPLAIN ANALYZE DELETE through query", (query("EXPLAIN ANALYZE DELETE FROM shop.order_items"),),
           frozenset({"ast", "ro", "role"}), "statement_type", TEXT),
    Attack("B11b", "EXPLAIN (ANALYZE, FORMAT JSON) UPDATE",
           (query("EXPLAIN (ANALYZE, FORMAT JSON) UPDATE shop.products SET price = 1"),),
           frozenset({"ast", "ro", "role"}), "statement_type", TEXT),
    # EXPLAIN is accepted by the query tool, ANALYZE where the operator allows it (as in these runs): the explained
    # statement must still pass the guard, however ANALYZE is spelt (tests/security/test_explain.py has the rest)
    Attack("B11c", "EXPLAIN (ANALYZE true) DELETE", (query("EXPLAIN (ANALYZE true) DELETE FROM shop.order_items"),),
           frozenset({"ast", "ro", "role"}), "statement_type", TEXT),
    Attack("B11d", "EXPLAIN (FORMAT JSON, ANALYZE 1) INSERT",
           (query("EXPLAIN (FORMAT JSON, ANALYZE 1) INSERT INTO shop.orders (customer_id, status, placed_at, total, "
                  "note) VALUES (1, 'paid', now(), 666, 'EVIL')"),), frozenset({"ast", "ro", "role"}),
           "statement_type", TEXT),
    Attack("B11e", "EXPLAIN (\"analyze\" on) UPDATE",
           (query('EXPLAIN ("analyze" on) UPDATE shop.products SET price = 0'),), frozenset({"ast", "ro", "role"}),
           "statement_type", TEXT),
    Attack("B11f", "EXPLAIN (ANALYZE false, ANALYZE) of a DELETE in a CTE",
           (query("EXPLAIN (ANALYZE false, ANALYZE) WITH d AS (DELETE FROM shop.order_items RETURNING 1) "
                  "SELECT count(*) FROM d"),), frozenset({"ast", "ro", "role"}), "data_modifying_cte", TEXT),
    Attack("B11g", "EXPLAIN ANALYSE takes a session advisory lock",
           (query("EXPLAIN ANALYSE SELECT pg_advisory_lock(42)"),), frozenset({"ast", "hyg"}), "function_denied", TEXT,
           poisons=True),
    Attack("B11h", "EXPLAIN (ANALYZE on, WAL) advances a sequence",
           (query("EXPLAIN (ANALYZE on, WAL) SELECT nextval('shop.orders_order_id_seq')"),),
           frozenset({"ast", "ro", "role"}), "function_denied", TEXT),
    Attack("B12a", "explain tool: ANALYZE smuggled into the statement",
           (Call("explain", {"sql": "ANALYZE DELETE FROM shop.order_items"}),), frozenset({"ast", "one"}), "syntax"),
    Attack("B12b", "explain tool: (ANALYZE) smuggled",
           (Call("explain", {"sql": "(ANALYZE) DELETE FROM shop.order_items"}),), frozenset({"ast", "one"}), "syntax"),
    Attack("B12c", "explain tool: analyze=true on a DELETE",
           (Call("explain", {"sql": "DELETE FROM shop.order_items", "analyze": True}),),
           frozenset({"ast", "ro", "role"}), "statement_type"),
    Attack("B12d", "explain tool: a second statement after the explained one",
           (Call("explain", {"sql": "SELECT 1; DELETE FROM shop.order_items", "analyze": True}),),
           frozenset({"ast", "one", "ro", "role"}), "not_single_statement"),
    Attack("B13a", "SELECT ... FOR UPDATE", (query("SELECT * FROM shop.orders FOR UPDATE"),),
           frozenset({"ast", "ro", "role"}), "locking_clause", SELECT_SHAPED),
    Attack("B13b", "SELECT ... FOR SHARE in a sub-select",
           (query("SELECT count(*) FROM (SELECT * FROM shop.orders FOR SHARE) s"),),
           frozenset({"ast", "ro", "role"}), "locking_clause", TEXT),
    Attack("B14", "LOCK TABLE ACCESS EXCLUSIVE", (query("LOCK TABLE shop.orders IN ACCESS EXCLUSIVE MODE"),),
           frozenset({"ast", "role"}), "statement_type", TEXT),
    Attack("B15a", "PREPARE survives ROLLBACK", (query("PREPARE p AS SELECT 1"),), frozenset({"ast", "hyg"}),
           "statement_type", TEXT, poisons=True),
    Attack("B15b", "PREPARE a DELETE, EXECUTE it in the next call",
           (query("PREPARE q AS DELETE FROM shop.order_items"), query("EXECUTE q")), frozenset({"ast", "ro", "role"}),
           "statement_type", TEXT, residue=True),
    Attack("B16", "DO block with dynamic SQL", (query("DO $$BEGIN EXECUTE 'DELETE FROM shop.order_items'; END$$"),),
           frozenset({"ast", "ro", "role"}), "statement_type", TEXT),
    Attack("B17a", "query_to_xml running pg_read_file",
           (query("SELECT query_to_xml('select pg_read_file(''/etc/passwd'')', true, false, '')"),),
           frozenset({"ast", "role"}), "function_denied", (*SELECT_SHAPED, *FUNCTION), ("query_to_xml",),
           leak="root:x:0:0"),
    Attack("B17b", "ts_stat running hidden SQL",
           (query("SELECT * FROM ts_stat('select to_tsvector(pg_read_file(''/etc/passwd''))')"),),
           frozenset({"ast", "role"}), "function_denied", (*SELECT_SHAPED, *FUNCTION), ("ts_stat",), leak="root"),
    Attack("B17c", "query_to_xml running a DELETE",
           (query("SELECT query_to_xml('DELETE FROM shop.order_items RETURNING 1', true, false, '')"),),
           # query_to_xml is STABLE: PostgreSQL refuses a DELETE inside it (0A000) whatever the role, so RO and ROLE
           # never get to act; AST refuses the call
           frozenset({"ast"}), "function_denied", (*TEXT, *FUNCTION), ("query_to_xml",)),
    # -- C. side-effecting functions inside a read-only SELECT --------------------------------------------------
    Attack("C18", "pg_sleep(3600)", (query("SELECT pg_sleep(3600)"),), frozenset({"ast", "tmo"}), "function_denied",
           (*SELECT_SHAPED, *FUNCTION), ("pg_sleep",)),
    Attack("C19a", "terminate other roles' backends",
           (query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename <> current_user"),),
           frozenset({"ast", "role"}), "function_denied", (*SELECT_SHAPED, *FUNCTION), ("pg_terminate_backend",)),
    Attack("C19b", "cancel other roles' backends",
           (query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename <> current_user"),),
           frozenset({"ast", "role"}), "function_denied", (*TEXT, *FUNCTION), ("pg_cancel_backend",)),
    Attack("C19c", "terminate the reader's own other sessions (PostgreSQL lets any role signal its own)",
           (query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE usename = current_user AND pid <> pg_backend_pid()"),),
           frozenset({"ast"}), "function_denied", (*SELECT_SHAPED, *FUNCTION), ("pg_terminate_backend",)),
    Attack("C20a", "set_config(statement_timeout) for the session",
           (query("SELECT set_config('statement_timeout', '0', false)"),), frozenset({"ast", "ro", "hyg"}),
           "function_denied", (*SELECT_SHAPED, *FUNCTION, *STRINGS), ("set_config",), poisons=True),
    Attack("C20b", "SET statement_timeout = 0", (query("SET statement_timeout = 0"),), frozenset({"ast", "ro", "hyg"}),
           "statement_type", TEXT, poisons=True),
    Attack("C21", "session advisory lock outlives the call", (query("SELECT pg_advisory_lock(42)"),),
           frozenset({"ast", "hyg"}), "function_denied", (*SELECT_SHAPED, *FUNCTION), ("pg_advisory_lock",),
           poisons=True),
    Attack("C22a", "nextval advances a sequence", (query("SELECT nextval('shop.orders_order_id_seq')"),),
           frozenset({"ast", "ro", "role"}), "function_denied", (*SELECT_SHAPED, *FUNCTION, *STRINGS), ("nextval",)),
    Attack("C22b", "setval resets a sequence", (query("SELECT setval('shop.orders_order_id_seq', 1)"),),
           frozenset({"ast", "ro", "role"}), "function_denied", (*TEXT, *FUNCTION), ("setval",)),
    Attack("C23a", "lo_import a server file", (query("SELECT lo_import('/etc/passwd')"),),
           frozenset({"ast", "ro", "role"}), "function_denied", (*SELECT_SHAPED, *FUNCTION, *STRINGS),
           ("lo_import",)),
    Attack("C23b", "large object written out to a server file",
           (query("SELECT lo_export(lo_from_bytea(0, 'pwned'), '{canary}')"),), frozenset({"ast", "ro", "role"}),
           "function_denied", (*TEXT, *FUNCTION), ("lo_export",)),
    Attack("C23c", "large object created (the role alone cannot refuse this)",
           (query("SELECT lo_from_bytea(0, 'x')"),), frozenset({"ast", "ro"}), "function_denied",
           (*SELECT_SHAPED, *FUNCTION), ("lo_from_bytea",)),
    Attack("C24a", "pg_read_file in the target list", (query("SELECT pg_read_file('/etc/passwd')"),),
           frozenset({"ast", "role"}), "function_denied", (*SELECT_SHAPED, *FUNCTION, *STRINGS), ("pg_read_file",),
           leak="root:x:0:0"),
    Attack("C24b", "pg_read_file in FROM (the crystaldba #178 bypass)",
           (query("SELECT * FROM pg_read_file('/etc/passwd')"),), frozenset({"ast", "role"}), "function_denied",
           (*SELECT_SHAPED, *FUNCTION, *STRINGS), ("pg_read_file",), leak="root:x:0:0"),
    Attack("C24c", "pg_ls_dir", (query("SELECT * FROM pg_ls_dir('.')"),), frozenset({"ast", "role"}),
           "function_denied", (*SELECT_SHAPED, *FUNCTION), ("pg_ls_dir",), leak="PG_VERSION"),
    Attack("C24d", "pg_read_binary_file", (query("SELECT pg_read_binary_file('/etc/passwd')"),),
           frozenset({"ast", "role"}), "function_denied", (*TEXT, *FUNCTION), ("pg_read_binary_file",)),
    Attack("C24e", "pg_stat_file", (query("SELECT * FROM pg_stat_file('postgresql.conf')"),),
           frozenset({"ast", "role"}), "function_denied", (*TEXT, *FUNCTION), ("pg_stat_file",)),
    Attack("C25a", "COPY TO PROGRAM", (query("COPY (SELECT 1) TO PROGRAM 'touch {canary}'"),),
           frozenset({"ast", "role"}), "statement_type", TEXT),
    Attack("C25b", "COPY a table to a server file", (query("COPY shop.customers TO '{canary}'"),),
           frozenset({"ast", "role"}), "statement_type", TEXT),
    # dblink is not installed here, so only AST can be shown to stop these in this corpus; ROLE's part (the
    # server refuses to start while the reader can reach dblink) is test_extension_attacks.py's, with it installed
    Attack("C26a", "dblink_exec", (query("SELECT dblink_exec('dbname=app', 'DROP TABLE shop.order_items')"),),
           frozenset({"ast"}), "function_denied", (*TEXT, *FUNCTION), ("dblink_exec",)),
    Attack("C26b", "dblink to the metadata service",
           (query("SELECT * FROM dblink('host=169.254.169.254 dbname=x', 'select 1') AS t(x int)"),),
           frozenset({"ast"}), "function_denied", TEXT),
    Attack("C27", "pg_import_system_collations", (query("SELECT pg_import_system_collations('pg_catalog')"),),
           frozenset({"ast", "role", "ro"}), "function_denied", (*SELECT_SHAPED, *FUNCTION),
           ("pg_import_system_collations",)),
    Attack("C28a", "pg_notify", (query("SELECT pg_notify('pgmcp_attack', 'x')"),), frozenset({"ast", "ro"}),
           "function_denied", (*SELECT_SHAPED, *FUNCTION), ("pg_notify",), notifies=True),
    Attack("C28b", "NOTIFY", (query("NOTIFY pgmcp_attack, 'x'"),), frozenset({"ast", "ro"}), "statement_type", TEXT,
           notifies=True),
    Attack("C29", "ANALYZE", (query("ANALYZE shop.orders"),), frozenset({"ast", "role"}), "statement_type", TEXT),
    Attack("C30", "txid_current assigns a transaction ID", (query("SELECT txid_current()"),), frozenset({"ast"}),
           "function_denied", (*SELECT_SHAPED, *FUNCTION), ("txid_current",)),
    # -- D. role games and disclosure ----------------------------------------------------------------------------
    Attack("D30a", "SET ROLE to the owner", (query("SET ROLE app_owner"),), frozenset({"ast", "ro", "role", "hyg"}),
           "statement_type", TEXT, poisons=True),
    Attack("D30b", "SET SESSION AUTHORIZATION", (query("SET SESSION AUTHORIZATION app_owner"),),
           frozenset({"ast", "ro", "role", "hyg"}), "statement_type", TEXT, poisons=True),
    Attack("D31", "search_path shadowing", (query("SET search_path = evil, pg_catalog"),),
           frozenset({"ast", "ro", "hyg"}), "statement_type", TEXT, poisons=True),
    Attack("D32a", "password hashes from pg_authid", (query("SELECT rolname, rolpassword FROM pg_authid"),),
           frozenset({"role"}), None, SELECT_SHAPED, leak="SCRAM-SHA-256$"),
    Attack("D32b", "password hashes from pg_shadow", (query("SELECT usename, passwd FROM pg_shadow"),),
           frozenset({"role"}), None, SELECT_SHAPED, leak="SCRAM-SHA-256$"),
    # -- F. injection through identifiers passed as tool arguments -----------------------------------------------
    Attack("F41a", "table name closing its quote", (Call("describe_table", {"schema": "shop", "table":
                                                      'orders"; DROP TABLE shop.order_items; --'}),), frozenset(),
           errors_when_all_on=False),
    Attack("F41b", "schema name closing its quote", (Call("list_tables", {"schema":
                                                       "shop'; DROP SCHEMA shop CASCADE; --"}),), frozenset(),
           errors_when_all_on=False),
    Attack("F41c", "search pattern with OR 1=1", (Call("search_schema", {"pattern": "%' OR 1=1 --"}),), frozenset(),
           errors_when_all_on=False),
    Attack("F41d", "schema name with a dollar-quoted payload", (Call("describe_table", {"schema":
                                                                 "$$; DROP TABLE shop.orders; $$", "table": "x"}),),
           frozenset(), errors_when_all_on=False),
)  # fmt: skip


# -- textual variants, for the layers that read the text -------------------------------------------------------


def _outside_quotes(sql: str, transform: object) -> str:
    """Apply `transform` (str -> str) to the parts of `sql` outside '...' and $$...$$ literals and -- comments
    (a comment's text is not SQL: spreading it over lines would turn its words into tokens)."""
    parts = re.split(r"('(?:[^']|'')*'|\$\$.*?\$\$|--[^\n]*)", sql, flags=re.S)
    return "".join(part if index % 2 else transform(part) for index, part in enumerate(parts))  # type: ignore[operator]


def _rename(sql: str, name: str, replacement: str) -> str:
    return _outside_quotes(sql, lambda part: re.sub(rf"\b{re.escape(name)}\s*\(", f"{replacement}(", part))


def _unicode(name: str) -> str:
    return 'U&"' + "".join(f"\\{ord(char):04x}" if char in "_e" else char for char in name) + '"'


def _dollar(sql: str) -> str:
    return re.sub(r"'((?:[^']|'')*)'", lambda match: "$q$" + match.group(1).replace("''", "'") + "$q$", sql)


def tree_key(call: Call) -> str:
    """What PostgreSQL's parser (pglast: the same parser, as the AST layer and the server use) makes of a call:
    the tool, its other arguments and the statement's parse tree without source positions; the text itself when
    it does not parse. Two forms with the same key are the same attack to every layer."""
    sql = call.arguments.get("sql")
    others = {name: value for name, value in call.arguments.items() if name != "sql"}
    tree: object = sql
    if isinstance(sql, str):
        try:
            tree = _without_positions(json.loads(parser.parse_sql_json(sql)))
        except parser.ParseError:
            tree = {"unparsed": sql}
    return json.dumps({"tool": call.tool, "arguments": others, "tree": tree}, sort_keys=True, default=str)


def _without_positions(node: object) -> object:
    if isinstance(node, dict):
        return {key: _without_positions(value) for key, value in node.items() if key not in _POSITIONS}
    if isinstance(node, list):
        return [_without_positions(item) for item in node]
    return node


_POSITIONS = frozenset({"location", "stmt_location", "stmt_len"})


def variants(attack: Attack) -> Iterator[tuple[str, Call]]:
    """(variant id, call) for the attack's first query in every applicable form that parses differently from the
    forms before it; the plain form first. A form the parser normalises away (a comment, keyword case, spacing,
    a trailing semicolon, U&"..." for a name it spells plainly) is the plain form again and is not run twice."""
    seen: set[str] = set()
    for variant, call in _all_variants(attack):
        key = tree_key(call)
        if key not in seen:
            seen.add(key)
            yield variant, call


def _all_variants(attack: Attack) -> Iterator[tuple[str, Call]]:
    yield "plain", attack.calls[0]
    first = attack.calls[0]
    sql = first.arguments.get("sql")
    if first.tool != "query" or not isinstance(sql, str):
        return
    forms: dict[str, str] = {
        "comment": "/* routine report */ " + sql,
        "line-comment": "-- routine report\n" + sql,
        "lower": _outside_quotes(sql, str.lower),
        "upper": _outside_quotes(sql, str.upper),
        "whitespace": _outside_quotes(sql, lambda part: re.sub(r" +", "\n\t  ", part)),
        "semicolon": sql.rstrip(";") + " ;  ",
        "nested": f"SELECT * FROM ({sql}) AS nested",
        "cte": f"WITH innocent AS ({sql}) SELECT * FROM innocent",
        "lateral": f"SELECT l.* FROM (SELECT 1) AS s, LATERAL ({sql}) AS l",
        "union": f"SELECT * FROM ({sql}) AS a UNION ALL SELECT * FROM ({sql}) AS b",
        "dollar": _dollar(sql),
    }
    for variant in attack.variants:
        if variant in forms:
            yield variant, query(forms[variant])
    for name in attack.functions:
        if "qualified" in attack.variants:
            yield f"qualified-{name}", query(_rename(sql, name, f"pg_catalog.{name}"))
        if "quoted" in attack.variants:
            yield f"quoted-{name}", query(_rename(sql, name, f'"{name}"'))
        if "unicode" in attack.variants:
            yield f"unicode-{name}", query(_rename(sql, name, _unicode(name)))


@dataclass(frozen=True)
class Run:
    attack: Attack
    variant: str
    call: Call
    layers: tuple[str, ...] = field(default=ALL_LAYER_NAMES)

    @property
    def id(self) -> str:
        only = "all" if self.layers == ALL_LAYER_NAMES else "only-" + "+".join(self.layers) if self.layers else "none"
        return f"{self.attack.id}-{self.variant}-{only}"


def runs() -> list[Run]:
    """Every attack in every variant with all layers on and with each text-reading layer alone; the plain
    form alone with each other layer that stops it; and, for attacks no layer is meant to stop (F), with
    every layer off."""
    planned: list[Run] = []
    for attack in CORPUS:
        for variant, call in variants(attack):
            planned.append(Run(attack, variant, call))
            for layer in sorted(attack.stops & {"one", "ast"}):
                planned.append(Run(attack, variant, call, (layer,)))
        for layer in sorted(attack.stops - {"one", "ast"}):
            planned.append(Run(attack, "plain", attack.calls[0], (layer,)))
        if not attack.stops:
            planned.append(Run(attack, "plain", attack.calls[0], ()))
    return planned


# -- what each layer alone must answer ---------------------------------------------------------------------------

UNICODE_RULES: dict[str, str] = {"C26a": "function_denied"}
"""The rule a `unicode-<name>` form gets with AST on. pglast keeps a U&"..." name as written, so the guard finds no
such function and refuses it as `function_unknown` (fail-closed); a name a deny prefix still matches is denied."""


def _each(layer: str, code: str, attacks: str) -> dict[tuple[str, str], str]:
    return {(attack, layer): code for attack in attacks.split()}


DATABASE_SQLSTATES: dict[tuple[str, str], str] = {
    **_each("ro", "25006", "A8c A8d B9 B10a B10b B11a B11b B11c B11d B11e B11f B11h B12c B12d B13a B13b B16 C22a C22b "
                           "C23a C23b C23c"),
    **_each("role", "25006", "A1 A2 A3 A8a A8b A8c A8d A8e B9 B10a B10b B11a B11b B11c B11d B11e B11f B12c B12d B13a "
                             "B13b B16"),
    **_each("role", "42501", "A4 A5 A7 B11h B14 B17a B17b C19a C19b C22a C22b C23a C23b C24a C24b C24c C24d C24e C25a "
                             "C25b C27 D30a D30b D32a D32b"),
    **_each("tmo", "57014", "C18"),
}  # fmt: skip
"""The SQLSTATE the database answers when only that layer stands between the attack and it: 25006 read-only
transaction (RO, and ROLE through the reader role's default_transaction_read_only), 42501 insufficient privilege
(ROLE), 57014 the statement timeout (TMO). A stacked statement's answer counts too: without ONE the text goes
over the simple protocol and the first error of any statement is what the call reports. A run of a database-side
layer alone must show its code; one not listed here must be in PROVEN_OTHERWISE, with the reason."""

_ROLLED_BACK = "the statement runs; the call's transaction is rolled back, and the snapshot proves it left nothing"
_SESSION = "proven by the next call's session matching a fresh one (HYG), not by an error"

PROVEN_OTHERWISE: dict[tuple[str, str], str] = {
    # RO alone cannot refuse these: SET TRANSACTION READ WRITE before the first query (A4), session settings and
    # characteristics (A6, C20a, C20b, D30a, D30b, D31), LISTEN/UNLISTEN (C28a, C28b), a collation import (C27),
    # PREPARE/EXECUTE (B15b). Only the rollback at the end of every call keeps them from lasting; a plain BEGIN
    # that is rolled back would do the same, which is why RO is never the only layer against them.
    **{(attack, "ro"): _ROLLED_BACK for attack in "A4 A6 B15b C20a C20b C27 C28a C28b D30a D30b D31".split()},
    **{(attack, "hyg"): _SESSION for attack in "A6 B11g B15a C20a C20b C21 D30a D30b D31".split()},
    # ROLE alone: a prepared statement of a harmless SELECT (B15b) and a cursor (C29) are no privilege matter
    **{(attack, "role"): _ROLLED_BACK for attack in "B15b C29".split()},
}  # fmt: skip
"""Database-side runs that show no SQLSTATE, and how they are proven instead."""


def expected_rule(run: Run) -> str | None:
    """The guard's rule for a run with AST or ONE on (None: the database answers, not the guard)."""
    attack = run.attack
    rule = attack.rule
    if run.variant.startswith("unicode-"):
        rule = UNICODE_RULES.get(attack.id, "function_unknown")
    if run.layers == ("ast",) and rule == "not_single_statement":
        return "statement_type"  # without ONE, the guard judges each statement: the first write is refused
    return rule
