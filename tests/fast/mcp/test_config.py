"""Settings: every variable parsed and checked in one place, every problem reported at once, secrets from files."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pgmcp.config import VARIABLES, ApiKey, Settings, parse_api_keys, render_env_table, unknown_variables
from pgmcp.errors import ConfigError

README = Path(__file__).resolve().parents[3] / "services" / "mcp" / "README.md"
TABLE_BEGIN = "<!-- BEGIN GENERATED: python -m pgmcp config-table -->"
TABLE_END = "<!-- END GENERATED -->"


def minimal(**extra: str) -> dict[str, str]:
    return {"MCP_DATABASE_PASSWORD": "reader-password", **extra}


def test_defaults() -> None:
    settings = Settings.from_env(minimal())
    assert settings == Settings(database_password="reader-password")
    assert (settings.bind_host, settings.port, settings.max_rows, settings.max_bytes) == (
        "127.0.0.1",
        8080,
        100,
        262144,
    )
    assert (settings.statement_timeout_ms, settings.allow_explain_analyze, settings.api_keys) == (5000, False, ())
    assert settings.allowed_hosts == ("127.0.0.1", "localhost", "[::1]", "mcp")


def test_every_variable_is_read(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# comment\n\nalice:" + "a" * 32 + "\nbob:" + "b" * 32 + ", carol:" + "c" * 32 + "\n")
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    env = {
        "MCP_DATABASE_HOST": "postgres",
        "MCP_DATABASE_PORT": "5433",
        "MCP_DATABASE_NAME": "shopdb",
        "MCP_DATABASE_USER": "reader",
        "MCP_DATABASE_PASSWORD_FILE": str(password),
        "MCP_DATABASE_SSLMODE": "require",
        "MCP_DATABASE_CONNECT_TIMEOUT_MS": "2000",
        "MCP_API_KEYS_FILE": str(keys),
        "MCP_BIND_HOST": "0.0.0.0",
        "MCP_PORT": "9000",
        "MCP_ALLOWED_HOSTS": "mcp.internal:8443, LOCALHOST",
        "MCP_ALLOWED_ORIGINS": "https://ai.example.com",
        "MCP_MAX_ROWS": "500",
        "MCP_MAX_BYTES": "1048576",
        "MCP_MAX_CELL_BYTES": "4096",
        "MCP_STATEMENT_TIMEOUT_MS": "10000",
        "MCP_LOCK_TIMEOUT_MS": "500",
        "MCP_POOL_MIN_SIZE": "0",
        "MCP_POOL_MAX_SIZE": "19",
        "MCP_POOL_TIMEOUT_MS": "1500",
        "MCP_MAX_CONCURRENCY_PER_KEY": "3",
        "MCP_MAX_REQUEST_BYTES": "2048",
        "MCP_ALLOW_EXPLAIN_ANALYZE": "yes",
        "MCP_SCHEMAS": "shop, reporting",
        "MCP_LOG_LEVEL": "debug",
        "MCP_DEV_ALLOW_PRIVILEGED_ROLE": "false",
        "MCP_STARTUP_TIMEOUT_MS": "30000",
    }
    assert {variable.env for variable in VARIABLES} == {name.removesuffix("_FILE") for name in env}
    settings = Settings.from_env(env)
    assert settings.database_password == "s3cret"  # trailing newline stripped
    assert [key.name for key in settings.api_keys] == ["alice", "bob", "carol"]
    assert settings.allowed_hosts == ("mcp.internal:8443", "localhost")
    assert settings.schemas == ("shop", "reporting") and settings.log_level == "DEBUG"
    assert settings.allow_explain_analyze is True and settings.pool_max_size == 19
    assert settings.database_target() == "reader@postgres:5433/shopdb"


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(
            {
                "MCP_PORT": "http",
                "MCP_MAX_ROWS": "0",
                "MCP_ALLOW_EXPLAIN_ANALYZE": "maybe",
                "MCP_LOG_LEVEL": "loud",
                "MCP_ALLOWED_HOSTS": "bad host!",
                "MCP_ALLOWED_ORIGINS": "ftp://x",
                "MCP_DATABASE_SSLMODE": "always",
            }
        )
    problems = error.value.problems
    text = "\n".join(problems)
    for expected in (
        "MCP_DATABASE_PASSWORD_FILE (or MCP_DATABASE_PASSWORD) is not set: point it at the file holding the reader "
        "role's password, e.g. MCP_DATABASE_PASSWORD_FILE=/run/secrets/mcp_reader_password",
        "MCP_DATABASE_SSLMODE='always' is invalid: must be one of disable, allow, prefer, require, verify-ca",
        "MCP_PORT='http' is invalid: not a whole number",
        "MCP_ALLOWED_HOSTS='bad host!' is invalid: not a host or host:port: bad host!",
        "MCP_ALLOWED_ORIGINS='ftp://x' is invalid: not an origin (scheme://host[:port]): ftp://x",
        "MCP_MAX_ROWS='0' is invalid: must be between 1 and 10000",
        "MCP_ALLOW_EXPLAIN_ANALYZE='maybe' is invalid: not a boolean: use true or false",
        "MCP_LOG_LEVEL='loud' is invalid: must be one of DEBUG, INFO, WARNING, ERROR",
    ):
        assert expected in text
    assert len(problems) == 8
    assert str(error.value).startswith("invalid configuration:\n  - ")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MCP_POOL_MIN_SIZE": "5", "MCP_POOL_MAX_SIZE": "4"}, "MCP_POOL_MIN_SIZE=5 is above MCP_POOL_MAX_SIZE=4"),
        (
            {"MCP_POOL_TIMEOUT_MS": "5000", "MCP_STATEMENT_TIMEOUT_MS": "5000"},
            "MCP_POOL_TIMEOUT_MS=5000 must be below MCP_STATEMENT_TIMEOUT_MS=5000",
        ),
        (
            {"MCP_LOCK_TIMEOUT_MS": "6000", "MCP_STATEMENT_TIMEOUT_MS": "5000"},
            "MCP_LOCK_TIMEOUT_MS=6000 is above MCP_STATEMENT_TIMEOUT_MS=5000: it would never fire",
        ),
        (
            {"MCP_MAX_CELL_BYTES": "4096", "MCP_MAX_BYTES": "2048"},
            "MCP_MAX_CELL_BYTES=4096 is above MCP_MAX_BYTES=2048",
        ),
        ({"MCP_POOL_MAX_SIZE": "20"}, "MCP_POOL_MAX_SIZE='20' is invalid: must be between 1 and 19"),
    ],
    ids=["pool-min-max", "pool-timeout", "lock-timeout", "cell-bytes", "pool-below-role-limit"],
)
def test_cross_field_rules(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(minimal(**env))
    assert any(problem.startswith(expected) for problem in error.value.problems), error.value.problems


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(ConfigError) as error:
        Settings(max_rows=0, pool_min_size=3, pool_max_size=2, database_host=" ")
    assert error.value.problems == [
        "MCP_DATABASE_HOST must not be empty",
        "MCP_MAX_ROWS=0 is invalid: must be between 1 and 10000",
    ]  # cross-field rules wait until every value is in range
    with pytest.raises(ConfigError):
        dataclasses.replace(Settings(), pool_min_size=3, pool_max_size=2)


def test_file_variants(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file")
    both = minimal(MCP_DATABASE_PASSWORD_FILE=str(secret))
    with pytest.raises(ConfigError) as error:
        Settings.from_env(both)
    assert error.value.problems[0] == (
        "both MCP_DATABASE_PASSWORD and MCP_DATABASE_PASSWORD_FILE are set (but are exclusive): keep one"
    )
    with pytest.raises(ConfigError) as missing:
        Settings.from_env({"MCP_DATABASE_PASSWORD_FILE": str(tmp_path / "nope")})
    assert missing.value.problems[0].startswith(f"unable to read MCP_DATABASE_PASSWORD_FILE={tmp_path / 'nope'}:")
    assert Settings.from_env({"MCP_DATABASE_PASSWORD_FILE": str(secret)}).database_password == "from-file"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "line 1: an entry is not `name:key` (the key part is missing)"),
        ("bad name:" + "k" * 32, "line 1: key name 'bad name' must be 1-64 letters"),
        ("alice:short", "line 1 (alice): the key is shorter than 16 characters"),
        ("a:" + "k" * 32 + "\na:" + "j" * 32, "key name 'a' appears more than once"),
        ("a:" + "k" * 32 + "\nb:" + "k" * 32, "two entries share the same key"),
    ],
    ids=["no-key", "bad-name", "short", "duplicate-name", "duplicate-key"],
)
def test_api_key_file_problems_never_show_the_key(raw: str, expected: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_api_keys(raw)
    assert expected in str(error.value)
    assert "k" * 20 not in str(error.value) and "short" not in str(error.value).replace("shorter", "")


def test_secrets_stay_out_of_reprs_and_errors() -> None:
    key = ApiKey("alice", "x" * 40)
    settings = Settings(database_password="p4ssw0rd-value", api_keys=(key,))
    assert "p4ssw0rd-value" not in repr(settings) and "x" * 40 not in repr(settings)
    assert repr(key) == "ApiKey(name='alice', secret=<redacted>)"
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"MCP_DATABASE_PASSWORD": "", "MCP_API_KEYS": "alice:tiny-secret"})
    assert "tiny-secret" not in str(error.value) and "<redacted>" in str(error.value)


def test_unknown_variables_are_named() -> None:
    assert unknown_variables({"MCP_MAX_ROW": "5", "MCP_PORT": "1", "MCP_API_KEYS_FILE": "/x", "HOME": "/"}) == [
        "MCP_MAX_ROW"
    ]


def test_readme_configuration_table_is_current() -> None:
    """STYLE rule 15: the README's table is generated from config.py (`python -m pgmcp config-table`)."""
    text = README.read_text()
    found = re.search(re.escape(TABLE_BEGIN) + r"\n(.*?)" + re.escape(TABLE_END), text, re.DOTALL)
    assert found is not None, f"{README} lacks the generated table markers"
    assert found.group(1) == render_env_table(), (
        "services/mcp/README.md is stale: replace the table with the output of `python -m pgmcp config-table`"
    )
