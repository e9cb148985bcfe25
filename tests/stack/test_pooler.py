"""PgBouncer in transaction mode between the MCP server and PostgreSQL (`make up PROFILE=pooler`,
compose/pooler.yaml), with TLS and SCRAM on both sides.

The hygiene proof: every attack of the security corpus that leaves session state behind (a setting, a role, an
advisory lock, a prepared statement, a cursor...) runs through PgBouncer with the guard off, so that it reaches
PostgreSQL, and only the database-side layers on (ROLE, RO, TMO, HYG); the next calls, on the same server
connection that PgBouncer hands out again, must find a session like a fresh one, and the database afterwards
holds no lock and no open transaction of the reader. PgBouncer is reached on its loopback port only.
"""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devtools.net import free_port
from pgmcp.config import Settings
from pgmcp.layers import Layers
from tests.fixtures.stack import Stack, start_stack
from tests.security.corpus import CORPUS, Attack
from tests.security.harness import STATEMENT_TIMEOUT_MS, McpHarness, text_of

RESIDUE_ATTACKS = [attack for attack in CORPUS if attack.poisons or attack.residue]
DATABASE_LAYERS = Layers.only("role", "ro", "tmo", "hyg")


@pytest.fixture(scope="module")
def pooled() -> Iterator[Stack]:
    with start_stack(profile="pooler", env={"PGBOUNCER_PORT": str(free_port())}) as running:
        yield running


def through_pgbouncer(stack: Stack) -> Settings:
    """An in-process server's settings for the reader through PgBouncer's loopback port, TLS verified."""
    return Settings(
        database_host="127.0.0.1",
        database_port=int(stack.extra_env["PGBOUNCER_PORT"]),
        database_name="app",
        database_user="mcp_reader",
        database_password=stack.secret("mcp_reader_password"),
        database_sslmode="verify-full",
        database_sslrootcert=str(stack.secrets_dir / "ca.crt"),
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        lock_timeout_ms=500,
        pool_min_size=1,
        pool_max_size=1,
        pool_timeout_ms=1000,
        allow_explain_analyze=True,
    )


def backend_pid(harness: McpHarness) -> int:
    result = harness.call("query", sql="SELECT pg_backend_pid()")
    assert result.structured_content is not None, text_of(result)
    return int(result.structured_content["rows"][0][0])


def test_the_mcp_server_reads_through_pgbouncer_over_tls(pooled: Stack) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", pooled.mcp_port, timeout=10)
    connection.request("GET", "/readyz", headers={"Host": f"127.0.0.1:{pooled.mcp_port}"})
    ready = json.loads(connection.getresponse().read())
    connection.close()
    assert ready["status"] == "ready" and ready["database"]["host"] == "pgbouncer", ready
    harness = McpHarness(through_pgbouncer(pooled), DATABASE_LAYERS)
    try:
        result = harness.call(
            "query", sql="SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
    finally:
        harness.close()
    assert not result.is_error and result.structured_content is not None, text_of(result)
    # PgBouncer's own connection to PostgreSQL is TLS too, as the reader
    assert result.structured_content["rows"] == [["mcp_reader", True]]
    # and a client that does not offer TLS is refused by PgBouncer (client_tls_sslmode=require)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host="127.0.0.1",
            port=int(pooled.extra_env["PGBOUNCER_PORT"]),
            dbname="app",
            user="mcp_reader",
            password=pooled.secret("mcp_reader_password"),
            sslmode="disable",
            connect_timeout=5,
        )


@pytest.mark.parametrize("attack", RESIDUE_ATTACKS, ids=[attack.id for attack in RESIDUE_ATTACKS])
def test_no_session_state_survives_into_the_next_call_under_transaction_pooling(pooled: Stack, attack: Attack) -> None:
    harness = McpHarness(through_pgbouncer(pooled), DATABASE_LAYERS)
    canary = Path(f"/tmp/pgmcp-canary-{secrets.token_hex(6)}")
    try:
        backend = backend_pid(harness)
        for call in attack.calls:
            arguments = {
                name: value.replace("{canary}", str(canary)) if isinstance(value, str) else value
                for name, value in call.arguments.items()
            }
            harness.call(call.tool, **arguments)
        for _ in range(3):
            assert harness.session_state() == harness.fresh_session, attack.id
        # PgBouncer gave the attack's server connection back to the next calls (it reuses the latest one first):
        # the probes above read the session the attack ran in
        assert backend_pid(harness) == backend
    finally:
        harness.close()
    with psycopg.connect(pooled.dsn(), autocommit=True) as conn:
        held = conn.execute(
            "SELECT locktype, mode FROM pg_locks JOIN pg_stat_activity USING (pid) WHERE usename = 'mcp_reader' "
            "AND (locktype = 'advisory' OR mode = 'AccessExclusiveLock')"
        ).fetchall()
        open_transactions = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'mcp_reader' AND state LIKE 'idle in transaction%'"
        ).fetchone()
    assert held == [] and open_transactions == (0,)
    assert not canary.exists()
