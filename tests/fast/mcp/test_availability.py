"""When the database is down, restarting or out of connections: clear transient errors, no hang, and recovery
without restarting the server. Startup refuses privileged roles and says why. Each test that breaks the database
gets a private native server (the session server is shared)."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import anyio
import psycopg
import pytest
from mcp import Client

from devtools.mcp_server import server_environment, start_mcp_process
from devtools.native_pg import NativePostgres
from devtools.net import free_port, http_get
from pgmcp.app import create_mcp
from pgmcp.config import Settings
from pgmcp.db import Database
from pgmcp.errors import DatabaseUnreachable, ExitCode, StartupRefused
from pgmcp.layers import ALL_LAYERS, Layers
from tests.fast.mcp.helpers import error_text, ok, rows_of
from tests.fixtures.pg import native_pg_fixture
from tests.helpers import wait_until

RECOVERY_TIMEOUT_S = 60


private_pg = native_pg_fixture(scope="module", demo_orders=50)


def reader(pg: NativePostgres, **overrides: object) -> Settings:
    base = Settings(
        database_host=pg.host,
        database_port=pg.port,
        database_password=pg.passwords["mcp_reader"],
        pool_min_size=1,
        pool_max_size=2,
        pool_timeout_ms=500,
        startup_timeout_ms=5000,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_database_down_is_a_clear_transient_error_then_recovers(private_pg: NativePostgres) -> None:
    server = create_mcp(reader(private_pg))
    async with Client(server, cache=None) as client:
        assert rows_of(ok(await client.call_tool("query", {"sql": "SELECT 1"}))) == [[1]]
        private_pg.stop()
        try:
            message = error_text(await client.call_tool("query", {"sql": "SELECT 1"}))
            listing = error_text(await client.call_tool("list_tables", {"schema": "shop"}))
        finally:
            private_pg.restart()
        assert message.startswith("database unavailable: the database is unreachable")
        assert "This is transient: retry in about 5 seconds" in message
        assert listing.startswith("database unavailable")

        async def answers() -> bool:
            result = await client.call_tool("query", {"sql": "SELECT count(*) FROM shop.orders"})
            return not result.is_error

        await _wait_async(answers, what="the server to answer again after the database restarted")
        assert rows_of(ok(await client.call_tool("query", {"sql": "SELECT count(*) FROM shop.orders"}))) == [[50]]


def test_http_readyz_and_tool_errors_follow_the_database(private_pg: NativePostgres) -> None:
    server = start_mcp_process(private_pg, overrides={"MCP_POOL_TIMEOUT": "500ms", "MCP_POOL_MIN_SIZE": "1"})
    host = {"Host": f"127.0.0.1:{server.port}"}
    try:
        status, body = http_get(f"{server.base}/readyz", headers=host)
        assert (status, json.loads(body)["status"]) == (200, "ready")
        private_pg.stop()
        try:
            status, body = http_get(f"{server.base}/readyz", headers=host)
            assert status == 503
            assert json.loads(body)["status"] == "unavailable"
            assert json.loads(body)["reason"].startswith("database unavailable: the database is unreachable")
            assert http_get(f"{server.base}/healthz", headers=host)[0] == 200  # alive, only not ready
        finally:
            private_pg.restart()
        wait_until(
            lambda: http_get(f"{server.base}/readyz", headers=host)[0] == 200,
            timeout=RECOVERY_TIMEOUT_S,
            what="/readyz to recover after the database restarted",
        )
        assert server.process.poll() is None  # the same process: nothing restarted it
    finally:
        server.cleanup()


@pytest.mark.anyio
async def test_out_of_connections_is_diagnosed(private_pg: NativePostgres) -> None:
    settings = reader(private_pg, pool_min_size=0, pool_max_size=2)
    server = create_mcp(settings)
    hogs: list[psycopg.Connection] = []
    async with Client(server, cache=None) as client:
        try:
            while True:  # take every slot the reader role has (its CONNECTION LIMIT)
                try:
                    hogs.append(psycopg.connect(private_pg.dsn("mcp_reader")))
                except psycopg.OperationalError as exc:
                    assert "too many connections for role" in str(exc)
                    break
            message = error_text(await client.call_tool("query", {"sql": "SELECT 1"}))
        finally:
            for hog in hogs:
                hog.close()
        assert len(hogs) == 20
        assert "no free connection slots (too many connections)" in message and "transient" in message
        await _wait_async(lambda: _succeeds(client), what="a connection once the slots were freed")


@pytest.mark.anyio
async def test_pool_above_the_role_connection_limit_is_refused(private_pg: NativePostgres) -> None:
    with psycopg.connect(private_pg.dsn(), autocommit=True) as admin:
        admin.execute("ALTER ROLE mcp_reader CONNECTION LIMIT 5")
        try:
            database = Database(reader(private_pg, pool_max_size=5), ALL_LAYERS)
            with pytest.raises(StartupRefused) as refused:
                await database.open()
        finally:
            admin.execute("ALTER ROLE mcp_reader CONNECTION LIMIT 20")
    assert "MCP_POOL_MAX_SIZE=5 is not below the CONNECTION LIMIT 5 of role 'mcp_reader'" in str(refused.value)
    assert "lower MCP_POOL_MAX_SIZE to at most 4" in str(refused.value)


@pytest.mark.anyio
async def test_the_pool_is_checked_against_the_real_limits_not_a_constant(private_pg: NativePostgres) -> None:
    """A role allowed 60 connections takes a pool of 40 (beyond the 20 the stack gives its reader); the database's
    own CONNECTION LIMIT and the server's slots are limits too."""
    with psycopg.connect(private_pg.dsn(), autocommit=True) as admin:
        slots = admin.execute(
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
            " - current_setting('reserved_connections')::int"
        ).fetchone()
        assert slots is not None
        admin.execute("ALTER ROLE mcp_reader CONNECTION LIMIT 60")
        try:
            database = Database(reader(private_pg, pool_min_size=0, pool_max_size=40), ALL_LAYERS)
            await database.open()
            await database.close()
            admin.execute("ALTER DATABASE app CONNECTION LIMIT 30")
            with pytest.raises(StartupRefused) as by_database:
                await Database(reader(private_pg, pool_min_size=0, pool_max_size=40), ALL_LAYERS).open()
            admin.execute("ALTER DATABASE app CONNECTION LIMIT -1")
            with pytest.raises(StartupRefused) as by_server:
                await Database(reader(private_pg, pool_min_size=0, pool_max_size=slots[0]), ALL_LAYERS).open()
        finally:
            admin.execute("ALTER DATABASE app CONNECTION LIMIT -1")
            admin.execute("ALTER ROLE mcp_reader CONNECTION LIMIT 20")
    assert "MCP_POOL_MAX_SIZE=40 is not below the CONNECTION LIMIT 30 of database 'app'" in str(by_database.value)
    assert f"is not below the server's {slots[0]} connection slots" in str(by_server.value)


def owner_settings(pg: NativePostgres, **overrides: object) -> Settings:
    return reader(pg, database_user="app_owner", database_password=pg.passwords["app_owner"], **overrides)


@pytest.mark.anyio
async def test_a_writer_role_is_refused_at_startup(pg: NativePostgres) -> None:
    database = Database(owner_settings(pg), ALL_LAYERS)
    with pytest.raises(StartupRefused) as refused:
        await database.open()
    text = str(refused.value)
    assert text.startswith("refusing to start:")
    assert "role app_owner" in text and "hint: " in text
    assert "MCP_DEV_ALLOW_PRIVILEGED_ROLE=true" in text
    assert not database.is_open


@pytest.mark.anyio
async def test_the_development_override_starts_with_a_loud_warning(
    pg: NativePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pgmcp.db")
    database = Database(owner_settings(pg, dev_allow_privileged_role=True), ALL_LAYERS)
    await database.open()
    try:
        assert database.is_open
    finally:
        await database.close()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("DEVELOPMENT OVERRIDE: MCP_DEV_ALLOW_PRIVILEGED_ROLE=true" in message for message in warnings)


@pytest.mark.anyio
async def test_without_the_role_layer_there_is_no_audit(pg: NativePostgres) -> None:
    database = Database(owner_settings(pg), Layers(role=False))
    await database.open()
    await database.close()


@pytest.mark.anyio
async def test_wrong_password_fails_at_once_with_a_hint(pg: NativePostgres) -> None:
    database = Database(reader(pg, database_password="not-the-password", startup_timeout_ms=600_000), ALL_LAYERS)
    with pytest.raises(DatabaseUnreachable) as failed:
        await database.open()  # a permanent error: no retry until the (ten minute) startup timeout
    assert 'password authentication failed for user "mcp_reader"' in str(failed.value)
    assert "hint: correct the password in MCP_DATABASE_PASSWORD_FILE (it must be mcp_reader's)" in str(failed.value)


def run_cli(
    pg: NativePostgres, tmp_path_factory: pytest.TempPathFactory, **overrides: str
) -> subprocess.CompletedProcess[str]:
    workdir = tmp_path_factory.mktemp("cli")
    env = server_environment(pg, workdir, port=free_port(), keys={"cli": secrets.token_hex(32)}, overrides=overrides)
    return subprocess.run(
        [sys.executable, "-m", "pgmcp"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_exit_status_for_invalid_configuration(
    pg: NativePostgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    result = run_cli(pg, tmp_path_factory, MCP_MAX_ROWS="lots", MCP_POOL_MAX_SIZE="2500", MCP_PORT="0")
    assert result.returncode == ExitCode.CONFIG == 3
    assert "MCP_MAX_ROWS='lots' is invalid: not a whole number" in result.stderr
    assert "MCP_POOL_MAX_SIZE='2500' is invalid: must be between 1 and 1000" in result.stderr
    assert "MCP_PORT='0' is invalid: must be between 1 and 65535" in result.stderr


def test_cli_exit_status_for_a_privileged_role(pg: NativePostgres, tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("owner")
    password = workdir / "owner_password"
    password.write_text(pg.passwords["app_owner"])
    result = run_cli(pg, tmp_path_factory, MCP_DATABASE_USER="app_owner", MCP_DATABASE_PASSWORD_FILE=str(password))
    assert result.returncode == ExitCode.STARTUP == 4
    assert "refusing to start" in result.stderr and "role app_owner" in result.stderr


def test_cli_exit_status_for_an_unreachable_database(
    pg: NativePostgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    result = run_cli(pg, tmp_path_factory, MCP_DATABASE_PORT=str(free_port()), MCP_STARTUP_TIMEOUT="1s")
    assert result.returncode == ExitCode.UNREACHABLE == 5
    assert "unable to connect to mcp_reader@127.0.0.1:" in result.stderr and "Connection refused" in result.stderr


async def _succeeds(client: Client) -> bool:
    return not (await client.call_tool("query", {"sql": "SELECT 1"})).is_error


async def _wait_async(predicate: Callable[[], Awaitable[bool]], *, what: str) -> None:
    """Poll an async predicate (each attempt is bounded by the pool timeout) until it holds."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {RECOVERY_TIMEOUT_S} s waiting for {what}")
        await anyio.sleep(0.1)  # poll interval
