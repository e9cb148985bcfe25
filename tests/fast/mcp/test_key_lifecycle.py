"""API keys through their life, against a running `python -m pgmcp` with two workers: created with the command
`make api-key` runs (ops/api-keys.sh), used at once without a restart, scoped (tools, a lower row limit),
listed with their last use, revoked and expired (401 saying so), and the key file rewritten under load with no
failed call."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.mcp_server import McpServerProcess, start_mcp_process
from devtools.native_pg import NativePostgres
from pgmcp import keys
from tests.fast.mcp.raw_http import post, rpc

REPO = Path(__file__).resolve().parents[3]
RELOAD_WAIT_S = 15.0
SETTLED = 6


@pytest.fixture(scope="module")
def second_schema(pg: NativePostgres) -> Iterator[None]:
    """A schema the reader role may read, beside shop, made before the server starts (it reads the functions and
    types it may call then): what a key limited to shop must still not reach."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA hr; CREATE TABLE hr.salaries (who text, amount int)")
        conn.execute("INSERT INTO hr.salaries VALUES ('carol', 100); ANALYZE hr.salaries")
        conn.execute("CREATE FUNCTION hr.f() RETURNS int LANGUAGE sql IMMUTABLE RETURN 1; CREATE TYPE hr.t AS (x int)")
        conn.execute("GRANT USAGE ON SCHEMA hr TO mcp_reader; GRANT SELECT ON hr.salaries TO mcp_reader")
    try:
        yield
    finally:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("DROP SCHEMA hr CASCADE")


@pytest.fixture(scope="module")
def server(pg: NativePostgres, second_schema: None) -> Iterator[McpServerProcess]:
    process = start_mcp_process(
        pg,
        keys={"alice": secrets.token_hex(32)},
        overrides={"MCP_WORKERS": "2", "MCP_POOL_MIN_SIZE": "1", "MCP_POOL_MAX_SIZE": "4"},
    )
    try:
        yield process
    finally:
        process.cleanup()


def key_file(server: McpServerProcess) -> Path:
    return Path(server.env["MCP_API_KEYS_FILE"])


def make(server: McpServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """ops/api-keys.sh, as `make api-key`/`api-keys`/`api-key-revoke` run it, on this server's key file."""
    environment = {**os.environ, "SECRETS_DIR": str(key_file(server).parent), **env}
    environment["PGMCP_METRICS_URL"] = f"http://127.0.0.1:{server.port}/metrics"  # a server outside the stack
    return subprocess.run(
        [str(REPO / "ops/api-keys.sh"), *args], env=environment, capture_output=True, text=True, timeout=60
    )


def call(
    server: McpServerProcess, secret: str, tool: str, arguments: Mapping[str, object]
) -> tuple[int, dict[str, str], Any]:
    status, headers, body = post(
        server,
        rpc("tools/call", {"name": tool, "arguments": dict(arguments)}),
        key=None,
        headers={"Authorization": f"Bearer {secret}"},
    )
    return status, headers, json.loads(body)


def until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition()` until it holds for `SETTLED` calls in a row: each worker looks at the key file at most
    once a second, on its own, so for a moment one may answer with the old keys and the other with the new."""
    deadline = time.monotonic() + RELOAD_WAIT_S
    streak = 0
    while streak < SETTLED:
        streak = streak + 1 if condition() else 0
        assert time.monotonic() < deadline, f"not within {RELOAD_WAIT_S} s: {what}"
        time.sleep(0.05 if streak else 0.2)


def test_a_created_key_works_at_once_within_its_scopes_and_a_revoked_one_is_told_so(server: McpServerProcess) -> None:
    created = make(server, "create", "carol", SCOPES="query", MAX_ROWS="3", EXPIRES="30d")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("pgmcp_") and "shown only now" in created.stderr
    assert secret not in key_file(server).read_text() and keys.digest(secret) in key_file(server).read_text()

    ten_rows = {"sql": "SELECT g FROM generate_series(1, 10) AS g"}
    until(lambda: call(server, secret, "query", ten_rows)[0] == 200, "the new key is accepted")
    status, _, body = call(server, secret, "query", ten_rows)
    structured = body["result"]["structuredContent"]
    assert (structured["row_count"], structured["max_rows"], structured["truncated_reason"]) == (3, 3, "max_rows")

    for tool, arguments in (("explain", {"sql": "SELECT 1"}), ("list_tables", {"schema": "public"})):
        status, headers, body = call(server, secret, tool, arguments)
        assert status == 403, body
        message = f"the API key 'carol' may not call {tool} (it may call: query)"
        assert body["error"]["message"] == message
        assert 'error="insufficient_scope"' in headers["www-authenticate"]

    # resources show what the discovery tools show: refused to this key too (where the resource is read)
    status, _, raw = post(
        server, rpc("resources/read", {"uri": "pg://overview"}), key=None, headers={"Authorization": f"Bearer {secret}"}
    )
    assert json.loads(raw)["error"]["message"] == "the API key 'carol' may not call list_tables (it may call: query)"

    listed = make(server, "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert listed.stdout.splitlines()[0].split() == [
        "name", "state", "tools", "schemas", "max_rows", "expires", "created", "last_used"]  # fmt: skip
    assert rows["carol"][1:5] == ["valid", "query", "all", "3"]
    assert rows["carol"][7] != "-"  # used just now, as the server's metric says
    assert rows["alice"][1:5] == ["valid", "all", "all", "-"] and rows["alice"][7] == "-"

    revoked = make(server, "revoke", "carol")
    assert revoked.returncode == 0 and "revoked the API key 'carol'" in revoked.stdout
    until(
        lambda: call(server, secret, "query", ten_rows)[2].get("error", {}).get("message", "").startswith(
            "API key 'carol' was revoked at "),
        "the revoked key is refused",
    )  # fmt: skip
    status, headers, body = call(server, secret, "query", ten_rows)
    assert status == 401
    assert 'error="invalid_token"' in headers["www-authenticate"]
    assert make(server, "revoke", "carol").returncode == 3  # already revoked: said, nothing changes
    assert make(server, "list").stdout.count("revoked") == 1


def test_an_expired_key_gets_401_saying_when(server: McpServerProcess) -> None:
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    secret = keys.create(key_file(server), "dave", tools=None, max_rows=None, expires=past + timedelta(hours=1),
                         now=past)  # fmt: skip
    expired_at = (past + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = f"API key 'dave' expired at {expired_at}: ask the operator for a new key"
    until(lambda: call(server, secret, "list_schemas", {})[2].get("error", {}).get("message") == message, message)
    status, headers, _ = call(server, secret, "list_schemas", {})
    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"SCOPES": "drop_table"}, "'drop_table' is neither a tool"),
        ({"MAX_ROWS": "0"}, "MAX_ROWS='0' is not a whole number"),
        ({"EXPIRES": "tomorrow"}, "EXPIRES='tomorrow' is not a date"),
    ],
)
def test_a_bad_argument_is_refused_and_the_file_is_left_alone(
    server: McpServerProcess, env: dict[str, str], problem: str
) -> None:
    before = key_file(server).read_text()
    result = make(server, "create", "erin", **env)
    assert result.returncode == 2 and problem in result.stderr
    assert key_file(server).read_text() == before


def test_rewriting_the_key_file_under_load_fails_no_call(server: McpServerProcess) -> None:
    """Callers keep calling while keys are added and revoked (each a rewrite of the file, one of them broken
    for a moment): every call succeeds, and the server logged the reloads."""
    stop = threading.Event()
    outcomes: list[int] = []
    alice = server.keys["alice"]

    def caller() -> None:
        while not stop.is_set():
            status, _, body = call(server, alice, "query", {"sql": "SELECT 1"})
            outcomes.append(status if "result" in body and not body["result"].get("isError") else -1)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    path = key_file(server)
    try:
        for index in range(6):
            keys.create(path, f"load{index}", tools=None, max_rows=None, expires=None, now=datetime.now(UTC))
            time.sleep(0.6)
            if index == 2:
                good = path.read_text()
                path.write_text("half a line without a colon\n")  # as a reader could catch a write midway
                time.sleep(1.5)
                path.write_text(good)
            keys.revoke(path, f"load{index}", now=datetime.now(UTC))
            time.sleep(0.6)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(outcomes) > 50 and set(outcomes) == {200}, f"{len(outcomes)} calls, failures: {outcomes.count(-1)}"
    log = server.log_text()
    assert "reloaded the API key file" in log and "was not reloaded, the" in log


def test_a_key_limited_to_a_schema_reads_only_that_schema(server: McpServerProcess) -> None:
    alice = server.keys["alice"]
    status, _, body = call(server, alice, "query", {"sql": "SELECT amount FROM hr.salaries"})
    assert body["result"]["structuredContent"]["rows"] == [[100]]  # the role may: only the key's scope stops it
    created = make(server, "create", "shop-only", SCHEMAS="shop")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    until(lambda: call(server, secret, "list_schemas", {})[0] == 200, "the new key is accepted")

    _, _, body = call(server, secret, "list_schemas", {})
    assert [item["name"] for item in body["result"]["structuredContent"]["schemas"]] == ["shop"]
    _, _, body = call(server, alice, "list_schemas", {})
    assert {"hr", "shop"} <= {item["name"] for item in body["result"]["structuredContent"]["schemas"]}
    _, _, body = call(server, secret, "list_tables", {"schema": "hr"})
    assert body["result"]["isError"] is True

    # unqualified names resolve in the key's schemas only (search_path for the call)
    _, _, body = call(server, secret, "query", {"sql": "SELECT count(*) FROM orders"})
    assert body["result"]["structuredContent"]["row_count"] == 1, body
    _, _, body = call(server, secret, "query", {"sql": "SELECT * FROM salaries"})
    assert body["result"]["isError"] is True and 'relation "salaries" does not exist' in text(body)
    refusals = {
        "SELECT amount FROM hr.salaries": "the statement names the schema hr, outside the schemas 'shop-only' may read",
        "SELECT * FROM shop.orders o JOIN hr.salaries s ON true": "the statement names the schema hr",
        "SELECT hr.f()": "the statement names the schema hr",
        "SELECT NULL::hr.t": "the statement names the schema hr",
        "SELECT most_common_vals FROM pg_stats": "pg_stats shows sample values of columns in every schema",
        "SELECT * FROM pg_catalog.pg_stats": "pg_stats shows sample values",
    }
    for sql, expected in refusals.items():
        for tool in ("query", "explain"):
            _, _, body = call(server, secret, tool, {"sql": sql})
            assert body["result"]["isError"] is True and expected in text(body), (tool, sql, text(body))
            assert "rule: schema_scope" in text(body)
    # the catalogue's own names stay readable: they show no rows of other schemas
    _, _, body = call(server, secret, "query", {"sql": "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'x'"})
    assert body["result"].get("isError") is not True, text(body)
    listed = make(server, "list")
    assert any(line.split()[:4] == ["shop-only", "valid", "all", "shop"] for line in listed.stdout.splitlines())


def text(body: Any) -> str:
    return str(body["result"]["content"][0]["text"])


def test_the_list_says_when_no_server_can_tell_the_last_use(server: McpServerProcess) -> None:
    """Without PGMCP_METRICS_URL the list reads the stack's mcp replicas; a project with none running gives '?'
    and says why, and the rest of the list is still there."""
    environment = {**os.environ, "SECRETS_DIR": str(key_file(server).parent),
                   "COMPOSE_PROJECT_NAME": f"pgstack-none-{secrets.token_hex(4)}"}  # fmt: skip
    environment.pop("PGMCP_METRICS_URL", None)
    listed = subprocess.run(
        [str(REPO / "ops/api-keys.sh"), "list"], env=environment, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["alice"][1] == "valid" and rows["alice"][7] == "?"
    assert "last use unknown: no server's metrics to read (is the stack's mcp running?)" in listed.stderr
