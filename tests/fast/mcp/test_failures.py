"""pgmcp.failures: the startup probe's verdict on a failed connection, and its agreement with pgbackup's.

Each real failure the fast tier can cause (a wrong password, a missing database or role, no server, an invalid
parameter) reaches the probe through libpq, so the message matched is libpq's own. The TLS failures need a
server built with OpenSSL: tests/stack/test_external.py causes them against the Debian build.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

import pgbackup.failures
from devtools.native_pg import NativePostgres
from pgmcp import failures
from pgmcp.config import Settings
from pgmcp.db import Database
from pgmcp.errors import DatabaseUnreachable
from pgmcp.layers import ALL_LAYERS


def reader(pg: NativePostgres, **overrides: object) -> Settings:
    base = Settings(database_host=pg.host, database_port=pg.port, database_password=pg.passwords["mcp_reader"])
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def test_the_causes_are_those_of_pgbackup() -> None:
    """The services share no code; the two tables must not drift apart: same kinds, order, verdicts, patterns."""

    def table(module: object) -> list[tuple[str, bool, str]]:
        return [(cause.kind, cause.permanent, cause.pattern.pattern) for cause in module.CAUSES]  # type: ignore[attr-defined]

    assert table(failures) == table(pgbackup.failures)


async def _failure(settings: Settings) -> str:
    with pytest.raises(DatabaseUnreachable) as failed:
        await Database(settings, ALL_LAYERS).open()
    return str(failed.value)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("overrides", "reason", "hint"),
    [
        (
            {"database_name": "nosuchdb"},
            "the server has no database nosuchdb",
            "hint: correct the database name (MCP_DATABASE_NAME), or create it",
        ),
        (
            {"database_user": "nosuchrole"},
            "the server refused the password of role nosuchrole",
            "the server says the same for a role that does not exist: check the user too",
        ),
    ],
    ids=["database-missing", "role-missing"],
)
async def test_a_permanent_failure_ends_startup_at_once_naming_the_split_setting(
    pg: NativePostgres, overrides: dict[str, str], reason: str, hint: str
) -> None:
    text = await _failure(reader(pg, startup_timeout_ms=600_000, **overrides))  # no ten-minute retry
    assert reason in text and hint in text


@pytest.mark.anyio
async def test_with_a_url_the_hint_names_the_keyword_in_the_url(pg: NativePostgres) -> None:
    url = f"postgresql://mcp_reader@{pg.host}:{pg.port}/nosuchdb"
    settings = reader(pg, database_url=url, startup_timeout_ms=600_000)
    text = await _failure(settings)
    assert "hint: correct the database name (dbname in MCP_DATABASE_URL), or create it" in text
    assert "MCP_DATABASE_NAME" not in text


@pytest.mark.anyio
async def test_a_transient_failure_is_retried_until_the_startup_timeout(pg: NativePostgres) -> None:
    text = await _failure(reader(pg, database_port=1, startup_timeout_ms=1500))
    assert re.search(r"after \d+ attempts in 2 s: nothing accepts connections there \(connection refused\)", text)
    assert "hint: start the server, or correct the host and port (MCP_DATABASE_HOST, MCP_DATABASE_PORT)" in text
    assert "hint: raise MCP_STARTUP_TIMEOUT" in text


@pytest.mark.parametrize(
    ("message", "kind", "permanent"),
    [
        ('connection to server at "10.0.0.1", port 5432 failed: SSL error: certificate verify failed',
         "untrusted-certificate", True),
        ('server certificate for "extdb.test" does not match host name "wrongname.test"', "host-name-mismatch", True),
        ("server does not support SSL, but SSL was required", "server-without-tls", True),
        ('connection to server at "x" failed: timeout expired', "timeout", False),
    ],
)  # fmt: skip
def test_libpq_tls_messages_are_classified(message: str, kind: str, permanent: bool) -> None:
    target = failures.Target.of({"host": "extdb.test", "user": "mcp_reader"}, 3, from_url=True, password_in_url=False)
    failure = failures.diagnose(message, target)
    assert (failure.kind, failure.permanent) == (kind, permanent)
    assert all("MCP_DATABASE_URL" in hint or "sslmode" not in hint for hint in failure.hints)
