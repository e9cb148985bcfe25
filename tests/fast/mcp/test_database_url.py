"""MCP_DATABASE_URL: the server reads your own PostgreSQL through one URL (URI or key/value form, a host list whose
first host is down, target_session_attrs, load_balance_hosts); the rules between the URL and the split settings
are pgbackup's for BACKUP_DATABASE_URL (exit 3, both names named, no password echoed); the server's own session
settings hold whatever the URL says, checked on the database side."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from devtools.net import free_port
from pgmcp.__main__ import main
from pgmcp.config import DEAD_PEER_KEYWORDS, VARIABLES, Settings
from pgmcp.errors import ConfigError, ExitCode
from tests.fast.mcp.helpers import Connect, call_checked, rows_of

SPLIT = [variable.env for variable in VARIABLES if variable.connection]
PASSWORD = "reader-password-4f1e"


def config_problems(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    return str(raised.value)


def url_of(pg: NativePostgres, *, hosts: str | None = None, password: bool = False, **params: str) -> str:
    userinfo = f"mcp_reader:{pg.passwords['mcp_reader']}" if password else "mcp_reader"
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"postgresql://{userinfo}@{hosts or f'{pg.host}:{pg.port}'}/{pg.database}" + (f"?{query}" if query else "")


# -- through the URL --------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("form", ["uri", "kv"])
async def test_the_tools_read_through_the_url(
    pg: NativePostgres, connect: Connect, reader_settings: Settings, superuser: psycopg.Connection[Any], form: str
) -> None:
    """A host list whose first host is down, with target_session_attrs and load_balance_hosts; the URL's
    application_name loses to the server's own, and every call still runs read-only (database side)."""
    hosts = f"127.0.0.1:{free_port()},{pg.host}:{pg.port}"
    if form == "uri":
        url = url_of(
            pg, hosts=hosts, target_session_attrs="primary", load_balance_hosts="disable", application_name="mine"
        )
        settings = Settings.from_env({"MCP_DATABASE_URL": url, "MCP_DATABASE_PASSWORD": pg.passwords["mcp_reader"]})
    else:
        url = (
            f"host=127.0.0.1,{pg.host} port={free_port()},{pg.port} dbname={pg.database} user=mcp_reader "
            f"password={pg.passwords['mcp_reader']} target_session_attrs=any application_name=mine"
        )
        settings = Settings.from_env({"MCP_DATABASE_URL": url})
    assert pg.passwords["mcp_reader"] not in repr(settings)
    assert settings.role == "mcp_reader" and settings.dbname == pg.database
    effective = dataclasses.replace(
        settings, api_keys=reader_settings.api_keys, pool_min_size=1, pool_max_size=4, startup_timeout_ms=10_000
    )
    sql = (
        "SELECT current_setting('application_name'), current_setting('transaction_read_only'), "
        "current_setting('default_transaction_read_only'), current_user, pg_backend_pid()"
    )
    async with connect(effective) as client:
        [row] = rows_of(await call_checked(client, "query", {"sql": sql}))
        seen = superuser.execute(
            "SELECT application_name, usename FROM pg_stat_activity WHERE pid = %s", (row[4],)
        ).fetchone()
    assert row[:4] == ["pgmcp", "on", "on", "mcp_reader"]
    assert seen == ("pgmcp", "mcp_reader")


def test_options_in_the_url_are_refused_and_nothing_connects(
    pg: NativePostgres, superuser: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """`options=-c default_transaction_read_only=off` would change what the server fixes itself: refused at config
    time (exit 3), before any connection, so the database sees no session of the reader."""
    before = superuser.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'mcp_reader'").fetchone()
    url = url_of(pg, password=True, options="-c%20default_transaction_read_only%3Doff")
    monkeypatched = {"MCP_DATABASE_URL": url, "MCP_API_KEYS": "alice:" + "a" * 32}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in monkeypatched.items():
            patch.setenv(name, value)
        assert main([]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "MCP_DATABASE_URL sets options, but the server fixes its session settings" in err
    assert "hint: remove options from the URL" in err
    assert pg.passwords["mcp_reader"] not in err
    after = superuser.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'mcp_reader'").fetchone()
    assert after == before
    role = superuser.execute(
        "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'mcp_reader'"
    ).fetchall()
    assert any("default_transaction_read_only=on" in (config or []) for (config,) in role)


def test_the_url_may_come_from_a_file(pg: NativePostgres, tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text(url_of(pg, password=True) + "\n")
    settings = Settings.from_env({"MCP_DATABASE_URL_FILE": str(secret)})
    assert settings.database_conninfo()["password"] == pg.passwords["mcp_reader"]
    assert settings.database_target() == f"mcp_reader@{pg.host}:{pg.port}/{pg.database}"


def test_an_empty_split_setting_beside_the_url_counts_as_unset(pg: NativePostgres) -> None:
    env = {"MCP_DATABASE_URL": url_of(pg, password=True), **dict.fromkeys(SPLIT, "")}
    assert Settings.from_env(env).role == "mcp_reader"


# -- the rules: exit 3, both names named, what to do -------------------------------------------------------------


@pytest.mark.parametrize("name", SPLIT)
@pytest.mark.parametrize("variable", ["MCP_DATABASE_URL", "MCP_DATABASE_URL_FILE"])
def test_a_split_connection_setting_beside_the_url_is_refused(tmp_path: Path, name: str, variable: str) -> None:
    url = "postgresql://mcp_reader@db.example.com/app"
    if variable.endswith("_FILE"):
        (tmp_path / "url").write_text(url)
        url = str(tmp_path / "url")
    error = config_problems({variable: url, name: "5432", "MCP_DATABASE_PASSWORD": PASSWORD})
    assert f"  - both {variable} and {name} are set (but are exclusive)\n" in error
    assert "    hint: the URL is the whole connection: put those values into it (e.g. postgresql://" in error
    assert f"and unset {name}, or unset {variable}" in error


@pytest.mark.parametrize("variable", ["MCP_DATABASE_PASSWORD", "MCP_DATABASE_PASSWORD_FILE"])
def test_a_password_in_the_url_and_in_a_setting_is_refused(tmp_path: Path, variable: str) -> None:
    (tmp_path / "password").write_text(PASSWORD)
    value = str(tmp_path / "password") if variable.endswith("_FILE") else PASSWORD
    error = config_problems({"MCP_DATABASE_URL": f"postgresql://mcp_reader:{PASSWORD}@h/app", variable: value})
    assert (
        f"  - both a password in MCP_DATABASE_URL and {variable} are set (but are exclusive)\n"
        "    hint: remove the password from the URL and keep it in MCP_DATABASE_PASSWORD_FILE"
    ) in error
    assert PASSWORD not in error


def test_a_url_without_a_password_is_valid_configuration() -> None:
    """A client certificate or a passfile needs none; the split settings still require one."""
    assert (
        "password" not in Settings.from_env({"MCP_DATABASE_URL": "postgresql://mcp_reader@h/app"}).database_conninfo()
    )
    assert "MCP_DATABASE_PASSWORD_FILE (or MCP_DATABASE_PASSWORD) is not set" in config_problems({})


def test_a_url_without_user_or_database_and_with_connect_timeout_is_refused() -> None:
    error = config_problems({"MCP_DATABASE_URL": "postgresql://db.example.com/?connect_timeout=5"})
    assert "  - MCP_DATABASE_URL names no user (MCP_DATABASE_USER does not apply with a URL)\n" in error
    assert "  - MCP_DATABASE_URL names no database (MCP_DATABASE_NAME does not apply with a URL)\n" in error
    assert (
        "  - MCP_DATABASE_URL sets connect_timeout=5, which MCP_DATABASE_CONNECT_TIMEOUT sets for every connection\n"
        "    hint: remove connect_timeout from the URL and set MCP_DATABASE_CONNECT_TIMEOUT=5s"
    ) in error


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://mcp_reader:pass%zzword-77a1@h/app", 'invalid percent-encoded token: "<redacted>"'),
        ("host=h user=mcp_reader dbname=app password='password-77a1", "unterminated quoted string"),
        ("postgresql://mcp_reader:password-77a1@h/app?sslmdoe=require", 'invalid URI query parameter: "sslmdoe"'),
        ("postgresql://mcp_reader:password-77a1@h/app?sslmode=requrie", 'invalid sslmode value: "requrie"'),
        ("postgresql://mcp_reader:pw-77a1@h/app?sslrootcert=system&sslmode=require", 'weak sslmode "require"'),
        ("host=h1,h2 port=1,2,3 user=mcp_reader dbname=app password=pw-77a1", "could not match 3 port numbers"),
        ("postgresql://mcp_reader:password@-77a1@h/app", "an @ or / in its user or password is not percent-encoded"),
    ],
    ids=["percent", "quote", "keyword", "sslmode", "system-ca", "ports", "at"],
)
def test_a_malformed_url_is_refused_with_libpqs_reason_and_no_password(url: str, reason: str) -> None:
    error = config_problems({"MCP_DATABASE_URL": url})
    assert f"  - MCP_DATABASE_URL=<redacted> is invalid: {reason}" in error
    assert "-77a1" not in error


def test_read_write_session_attrs_are_refused_for_a_read_only_role() -> None:
    """libpq checks read-write with `SHOW transaction_read_only`, which the reader's sessions always answer on."""
    error = config_problems({"MCP_DATABASE_URL": "postgresql://mcp_reader@h/app?target_session_attrs=read-write"})
    assert "hint: write target_session_attrs=primary to reach the primary" in error


def test_url_and_url_file_are_exclusive(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("postgresql://mcp_reader@h/app")
    error = config_problems(
        {"MCP_DATABASE_URL": "postgresql://mcp_reader@h/app", "MCP_DATABASE_URL_FILE": str(tmp_path / "url")}
    )
    assert "both MCP_DATABASE_URL and MCP_DATABASE_URL_FILE are set (but are exclusive)" in error


# -- a server that vanishes without closing its connections ----------------------------------------------------


def socket_options(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """What the kernel holds for the connection's socket (not what libpq was asked): keepalive on, its timings,
    and TCP_USER_TIMEOUT in ms."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        return {
            "keepalives": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            "keepalives_idle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            "keepalives_interval": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            "keepalives_count": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            "tcp_user_timeout": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        }
    finally:
        sock.close()


@pytest.mark.parametrize("source", ["split", "url"])
def test_every_connection_finds_a_vanished_server_through_the_kernel(pg: NativePostgres, source: str) -> None:
    """A partition black-holes a standby's packets: without keepalives and TCP_USER_TIMEOUT a pooled connection
    to it would wait the system's TCP timeout (about 15 minutes), and a worker's pool would fill with them
    (tests/stack/test_swarm.py cuts a node off for real)."""
    if source == "url":
        settings = Settings.from_env({"MCP_DATABASE_URL": url_of(pg, password=True)})
    else:
        settings = Settings.from_env(
            {
                "MCP_DATABASE_HOST": pg.host,
                "MCP_DATABASE_PORT": str(pg.port),
                "MCP_DATABASE_NAME": pg.database,
                "MCP_DATABASE_USER": "mcp_reader",
                "MCP_DATABASE_PASSWORD": pg.passwords["mcp_reader"],
            }
        )
    with psycopg.connect(**settings.database_conninfo()) as conn:
        assert socket_options(conn) == {**DEAD_PEER_KEYWORDS, "keepalives": 1}


def test_a_url_may_set_its_own_keepalives(pg: NativePostgres) -> None:
    url = url_of(pg, password=True, keepalives_idle="30", tcp_user_timeout="60000")
    with psycopg.connect(**Settings.from_env({"MCP_DATABASE_URL": url}).database_conninfo()) as conn:
        options = socket_options(conn)
    assert options == {**DEAD_PEER_KEYWORDS, "keepalives": 1, "keepalives_idle": 30, "tcp_user_timeout": 60000}
