"""The attack corpus (sections A-D, F) through the real MCP server, with every layer and with each alone.

Each run sends the attack through `mcp.Client` to `pgmcp.app.create_mcp(...)`, then proves through a
superuser connection that nothing changed: rows, schema, roles, settings, large objects, sequences,
locks, files, notifications, and that other sessions are still alive. Poisoning attacks are followed by
a second call that must find its pooled session exactly as a fresh one.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from tests.security.corpus import (
    ALL_LAYER_NAMES,
    CORPUS,
    DATABASE_SQLSTATES,
    PROVEN_OTHERWISE,
    Run,
    expected_rule,
    runs,
    tree_key,
)
from tests.security.harness import McpHarness, Servers, text_of
from tests.security.legit_corpus import LEGIT
from tests.security.state import DatabaseState, assert_unchanged, capture_state

RUNAWAY_SQL = (
    "SELECT pid, usename, state, left(query, 80) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state NOT IN ('idle')"
)

RUNS = runs()

# SQLSTATEs that mean an attack is broken, not stopped: it never reached what it aims at, so "nothing changed"
# would prove nothing. When only database-side layers are on, the statement reaches PostgreSQL, and each attack
# must be well-formed there: refused for privilege (42501), read-only (25006), the timeout (57014), or run.
MALFORMED_SQLSTATES = {
    "42601": "syntax error",
    "42P01": "undefined table",
    "42703": "undefined column",
    "42883": "undefined function",
    "42704": "undefined object",
    "42702": "ambiguous column",
    "42804": "datatype mismatch",
    "3F000": "invalid schema name",
    "42P02": "undefined parameter",
    "08P01": "protocol violation",
}


@pytest.fixture(scope="module")
def checker(pg: NativePostgres) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def baseline(checker: psycopg.Connection) -> DatabaseState:
    return capture_state(checker)


@pytest.fixture(scope="module")
def listener(pg: NativePostgres) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("LISTEN pgmcp_attack")
        yield conn


@pytest.fixture(scope="module")
def bystanders(pg: NativePostgres) -> Iterator[dict[str, tuple[psycopg.Connection, int]]]:
    """Sessions of other roles (and one of the reader's own, on another pool), open for the whole module."""
    connections = {role: psycopg.connect(pg.dsn(role), autocommit=True) for role in ("app_owner", "backup_operator")}
    try:
        yield {role: (conn, conn.info.backend_pid) for role, conn in connections.items()}
    finally:
        for conn in connections.values():
            conn.close()


def test_listener_sees_a_committed_notification(listener: psycopg.Connection, checker: psycopg.Connection) -> None:
    """Control for the notification checks below: a real NOTIFY does reach the listener."""
    checker.execute("NOTIFY pgmcp_attack, 'control'")
    listener.execute("SELECT 1")
    assert [note.payload for note in listener.notifies(timeout=0)] == ["control"]


@pytest.mark.parametrize("run", RUNS, ids=lambda run: run.id)
def test_attack_is_stopped(
    run: Run,
    servers: Servers,
    checker: psycopg.Connection,
    baseline: DatabaseState,
    listener: psycopg.Connection,
    bystanders: dict[str, tuple[psycopg.Connection, int]],
) -> None:
    attack = run.attack
    private = attack.residue and "hyg" not in run.layers
    harness = servers.private(run.layers) if private else servers.get(run.layers)
    try:
        check_run(run, harness, checker, baseline, listener, bystanders)
    finally:
        if private:
            harness.close()


def check_run(
    run: Run,
    harness: McpHarness,
    checker: psycopg.Connection,
    baseline: DatabaseState,
    listener: psycopg.Connection,
    bystanders: dict[str, tuple[psycopg.Connection, int]],
) -> None:
    attack = run.attack
    canary = Path(f"/tmp/pgmcp-canary-{secrets.token_hex(6)}")

    results = []
    for call in (run.call, *attack.calls[1:]):
        arguments = {
            name: value.replace("{canary}", str(canary)) if isinstance(value, str) else value
            for name, value in call.arguments.items()
        }
        results.append(harness.call(call.tool, **arguments))
    texts = [text_of(result) for result in results]

    rule = expected_rule(run)
    if run.layers == ALL_LAYER_NAMES:
        if attack.errors_when_all_on:
            assert results[0].is_error, texts[0]
        if rule is not None:
            assert f"\nrule: {rule} " in texts[0], texts[0]
        else:
            code = DATABASE_SQLSTATES.get((attack.id, "role"))
            assert code is None or f"(SQLSTATE {code})" in texts[0], texts[0]
    elif set(run.layers) & {"one", "ast"}:
        # every form, every text layer: refused, and for the reason this layer gives
        assert results[0].is_error and f"\nrule: {rule} " in texts[0], texts[0]
    elif run.layers:
        # one database-side layer: the attack reached PostgreSQL, must be one that could work there, and the
        # layer must answer with its own SQLSTATE (or be proven another way, said in corpus.PROVEN_OTHERWISE)
        for text in texts:
            broken = [name for code, name in MALFORMED_SQLSTATES.items() if f"(SQLSTATE {code})" in text]
            assert not broken, f"the attack itself is broken ({', '.join(broken)}), so it proves nothing:\n{text}"
        (layer,) = run.layers
        code = DATABASE_SQLSTATES.get((attack.id, layer))
        if code is not None:
            assert results[0].is_error and f"(SQLSTATE {code})" in texts[0], texts[0]
        else:
            assert (attack.id, layer) in PROVEN_OTHERWISE, f"{run.id}: no SQLSTATE in {texts[0][:300]!r}"
    if attack.leak is not None:
        assert not any(attack.leak in text for text in texts)
    assert not canary.exists(), f"{canary} was written"

    assert_unchanged(baseline, checker)
    for role, (conn, pid) in bystanders.items():
        assert conn.execute("SELECT pg_backend_pid()").fetchone() == (pid,), f"the {role} session was replaced"
    listener.execute("SELECT 1")
    assert [note.payload for note in listener.notifies(timeout=0)] == []
    assert checker.execute(RUNAWAY_SQL).fetchall() == []
    # without HYG a session must still come back clean, except from attacks known to leave residue there
    # (they ran on a private server, and which layer stops the residue is what `poisons` attacks test)
    if attack.poisons or ("hyg" not in run.layers and not attack.residue):
        assert harness.session_state() == harness.fresh_session


SECTIONS = ("A", "B", "C", "D", "F")


def test_corpus_covers_every_section() -> None:
    assert {attack.section for attack in CORPUS} == set(SECTIONS)
    assert len({attack.id for attack in CORPUS}) == len(CORPUS)
    for attack in CORPUS:
        assert attack.stops <= set(ALL_LAYER_NAMES), attack.id


def test_the_documented_counts_are_current() -> None:
    """docs/security.md states the size of the corpus, counted honestly: distinct attacks, distinct parse trees (a
    form the parser normalises away is not counted, nor run, twice) and runs; it must match what runs."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    forms = {(run.attack.id, run.variant) for run in RUNS}
    trees = {(run.attack.id, tree_key(run.call)) for run in RUNS}
    sections = ", ".join(
        f"{section} {sum(attack.section == section for attack in CORPUS)}" for section in sorted(SECTIONS)
    )
    assert len(trees) == len(forms), "two forms of one attack parse the same: corpus.variants() must drop one"
    assert f"**{len(CORPUS)} attacks** ({sections})" in text
    assert f"**{len(trees)} distinct parse trees**" in text
    assert f"**{len(RUNS)} times**" in text
    assert f"all layers on ({sum(len(run.layers) == len(ALL_LAYER_NAMES) for run in RUNS)})" in text
    assert f"**{len(LEGIT)} legitimate analytical queries**" in text


def test_every_expected_database_answer_belongs_to_a_run() -> None:
    """No stale entry: each (attack, layer) of DATABASE_SQLSTATES and PROVEN_OTHERWISE is a planned run, and none
    is in both."""
    planned = {(run.attack.id, run.layers[0]) for run in RUNS if len(run.layers) == 1}
    assert set(DATABASE_SQLSTATES) <= planned
    assert set(PROVEN_OTHERWISE) <= planned
    assert not set(DATABASE_SQLSTATES) & set(PROVEN_OTHERWISE)
