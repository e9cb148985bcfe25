"""Settings: every variable parsed and checked in one place, every problem reported at once, secrets from files."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from devtools.tls import CertificateAuthority
from pgmcp import generated
from pgmcp.config import VARIABLES, Settings, parse_api_keys, unknown_variables
from pgmcp.errors import ConfigError
from pgmcp.keys import KeyEntry
from pgmcp.units import show_bytes, show_milliseconds, to_bytes, to_milliseconds

README = Path(__file__).resolve().parents[3] / "services" / "mcp" / "README.md"


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
    oauth_ca = CertificateAuthority.create().write(tmp_path / "oauth-ca.crt")
    env = {
        "MCP_DATABASE_HOST": "standby-a,postgres",
        "MCP_DATABASE_PORT": "5433",
        "MCP_DATABASE_TARGET_SESSION_ATTRS": "prefer-standby",
        "MCP_DATABASE_LOAD_BALANCE_HOSTS": "random",
        "MCP_MAX_REPLICA_LAG": "2.5s",
        "MCP_DATABASE_NAME": "shopdb",
        "MCP_DATABASE_USER": "reader",
        "MCP_DATABASE_PASSWORD_FILE": str(password),
        "MCP_DATABASE_SSLMODE": "verify-full",
        "MCP_DATABASE_SSLROOTCERT": str(password),
        "MCP_DATABASE_CONNECT_TIMEOUT": "2s",
        "MCP_API_KEYS_FILE": str(keys),
        "MCP_BIND_HOST": "0.0.0.0",
        "MCP_PORT": "9000",
        "MCP_ALLOWED_HOSTS": "mcp.internal:8443, LOCALHOST",
        "MCP_ALLOWED_ORIGINS": "https://ai.example.com",
        "MCP_PUBLIC_URL": "https://MCP.example.com/",
        "MCP_OAUTH_ISSUER": "https://login.example.com/realms/team",
        "MCP_OAUTH_JWKS_URL": "https://login.example.com/realms/team/certs",
        "MCP_OAUTH_AUDIENCE": "pgmcp",
        "MCP_OAUTH_ALGORITHMS": "RS256, ES256",
        "MCP_OAUTH_SCHEMA_SCOPES": "sales=shop,reporting; hr=hr",
        "MCP_OAUTH_CA_CERT": str(oauth_ca),
        "MCP_MAX_ROWS": "500",
        "MCP_MAX_BYTES": "1MiB",
        "MCP_MAX_CELL_BYTES": "4096",
        "MCP_STATEMENT_TIMEOUT": "10s",
        "MCP_LOCK_TIMEOUT": "500ms",
        "MCP_POOL_MIN_SIZE": "0",
        "MCP_POOL_MAX_SIZE": "19",
        "MCP_POOL_TIMEOUT": "1.5s",
        "MCP_MAX_CONCURRENCY_PER_KEY": "3",
        "MCP_MAX_REQUEST_BYTES": "2048",
        "MCP_ALLOW_EXPLAIN_ANALYZE": "yes",
        "MCP_SCHEMAS": "shop, reporting",
        "MCP_LOG_LEVEL": "debug",
        "MCP_DEV_ALLOW_PRIVILEGED_ROLE": "false",
        "MCP_ALLOW_PUBLIC_TEMP": "true",
        "MCP_STARTUP_TIMEOUT": "30s",
        "MCP_WORKERS": "3",
    }
    # MCP_DATABASE_URL excludes the split connection settings: test_database_url.py reads it
    every = {variable.env for variable in VARIABLES if variable.env != "MCP_DATABASE_URL"}
    assert every == {name.removesuffix("_FILE") for name in env}
    settings = Settings.from_env(env)
    assert settings.database_password == "s3cret"  # trailing newline stripped
    assert [key.name for key in settings.api_keys] == ["alice", "bob", "carol"]
    assert settings.allowed_hosts == ("mcp.internal:8443", "localhost")
    assert settings.accepted_hosts() == ("mcp.internal:8443", "localhost", "mcp.example.com")
    assert settings.accepted_origins() == ("https://ai.example.com", "https://mcp.example.com")
    assert (settings.resource, settings.audience) == ("https://mcp.example.com/mcp", "pgmcp")
    assert settings.oauth_issuer == "https://login.example.com/realms/team"
    assert settings.oauth_jwks_url == "https://login.example.com/realms/team/certs"
    assert settings.oauth_algorithms == ("RS256", "ES256") and settings.api_keys_file == str(keys)
    assert settings.oauth_schema_scopes == (("sales", ("shop", "reporting")), ("hr", ("hr",)))
    assert settings.oauth_ca_cert == str(oauth_ca)
    assert settings.schemas == ("shop", "reporting") and settings.log_level == "DEBUG"
    assert settings.allow_public_temp is True
    assert settings.workers == 3
    assert settings.allow_explain_analyze is True and settings.pool_max_size == 19
    assert settings.database_target() == "reader@standby-a,postgres:5433/shopdb"
    conninfo = settings.database_conninfo()
    assert (conninfo["sslmode"], conninfo["sslrootcert"]) == ("verify-full", str(password))
    assert (conninfo["host"], conninfo["target_session_attrs"], conninfo["load_balance_hosts"]) == (
        "standby-a,postgres",
        "prefer-standby",
        "random",
    )
    assert settings.max_replica_lag_ms == 2500
    assert (settings.statement_timeout_ms, settings.lock_timeout_ms, settings.pool_timeout_ms) == (10_000, 500, 1500)
    assert (settings.database_connect_timeout_ms, settings.startup_timeout_ms, settings.max_bytes) == (
        2000,
        30_000,
        1024 * 1024,
    )


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
        "MCP_DATABASE_PASSWORD_FILE (or MCP_DATABASE_PASSWORD) is not set\nhint: point it at the file holding the "
        "reader role's password, e.g. MCP_DATABASE_PASSWORD_FILE=/run/secrets/mcp_reader_password",
        "MCP_DATABASE_SSLMODE='always' is invalid: must be one of disable, allow, prefer, require, verify-ca",
        "MCP_PORT='http' is invalid: not a whole number",
        "MCP_ALLOWED_HOSTS='bad host!' is invalid: not a host or host:port: bad host!",
        "MCP_ALLOWED_ORIGINS='ftp://x' is invalid: not an origin (scheme://host[:port]): ftp://x",
        "MCP_MAX_ROWS='0' is invalid: must be between 1 and 10000",
        "MCP_ALLOW_EXPLAIN_ANALYZE='maybe' is invalid: not a boolean\nhint: write true or false",
        "MCP_LOG_LEVEL='loud' is invalid: must be one of DEBUG, INFO, WARNING, ERROR",
    ):
        assert expected in text
    assert len(problems) == 8
    assert str(error.value).startswith("invalid configuration:\n  - ")
    assert "\n  - MCP_PORT='http' is invalid: not a whole number\n    hint: write one from 1 to 65535\n" in str(
        error.value
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MCP_POOL_MIN_SIZE": "5", "MCP_POOL_MAX_SIZE": "4"}, "MCP_POOL_MIN_SIZE=5 is above MCP_POOL_MAX_SIZE=4"),
        (
            {"MCP_POOL_TIMEOUT": "5s", "MCP_STATEMENT_TIMEOUT": "5000ms"},
            "MCP_POOL_TIMEOUT=5s must be below MCP_STATEMENT_TIMEOUT=5s",
        ),
        (
            {"MCP_LOCK_TIMEOUT": "6s", "MCP_STATEMENT_TIMEOUT": "5s"},
            "MCP_LOCK_TIMEOUT=6s is above MCP_STATEMENT_TIMEOUT=5s: it would never fire",
        ),
        (
            {"MCP_MAX_CELL_BYTES": "4KiB", "MCP_MAX_BYTES": "2048"},
            "MCP_MAX_CELL_BYTES=4KiB is above MCP_MAX_BYTES=2KiB",
        ),
        ({"MCP_POOL_MAX_SIZE": "2000"}, "MCP_POOL_MAX_SIZE='2000' is invalid: must be between 1 and 1000"),
    ],
    ids=["pool-min-max", "pool-timeout", "lock-timeout", "cell-bytes", "pool-below-role-limit"],
)
def test_cross_field_rules(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(minimal(**env))
    assert any(problem.startswith(expected) for problem in error.value.problems), error.value.problems


def test_without_a_rootcert_libpq_keeps_its_own_default() -> None:
    assert "sslrootcert" not in Settings.from_env(minimal()).database_conninfo()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"MCP_DATABASE_SSLMODE": "verify_full"},
            "MCP_DATABASE_SSLMODE='verify_full' is invalid: must be one of disable, allow, prefer, require, verify-ca, "
            "verify-full",
        ),
        (
            {"MCP_DATABASE_SSLMODE": "verify-full", "MCP_DATABASE_SSLROOTCERT": "/nonexistent/ca.crt"},
            "MCP_DATABASE_SSLROOTCERT='/nonexistent/ca.crt' is invalid: unable to read the CA file: No such file or "
            "directory\nhint: mount the CA certificate there",
        ),
        (
            {"MCP_DATABASE_SSLMODE": "verify-full", "MCP_DATABASE_SSLROOTCERT": " "},
            "MCP_DATABASE_SSLROOTCERT=' ' is invalid: must not be empty",
        ),
        (
            {"MCP_DATABASE_SSLMODE": "require", "MCP_DATABASE_SSLROOTCERT": "system"},
            "MCP_DATABASE_SSLROOTCERT=system needs MCP_DATABASE_SSLMODE=verify-full, not require",
        ),
    ],
    ids=["sslmode", "missing-rootcert", "empty-rootcert", "system-needs-verify-full"],
)
def test_bad_tls_settings_are_refused_with_what_to_fix(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(minimal(**env))
    assert any(problem.startswith(expected) for problem in error.value.problems), error.value.problems


def test_a_bad_ca_file_for_the_issuer_is_refused_with_what_to_fix(tmp_path: Path) -> None:
    oauth = {"MCP_PUBLIC_URL": "https://mcp.example.com", "MCP_OAUTH_ISSUER": "https://login.example.com"}
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    cases = {
        "/nonexistent/ca.crt": "MCP_OAUTH_CA_CERT='/nonexistent/ca.crt' is invalid: unable to read the CA file: "
        "No such file or directory\nhint: mount the authorization server's CA certificate there",
        str(not_pem): f"MCP_OAUTH_CA_CERT={str(not_pem)!r} is invalid: not PEM CA certificates",
    }
    for raw, expected in cases.items():
        with pytest.raises(ConfigError) as error:
            Settings.from_env(minimal(**oauth, MCP_OAUTH_CA_CERT=raw))
        assert any(problem.startswith(expected) for problem in error.value.problems), error.value.problems
    good = CertificateAuthority.create().write(tmp_path / "good.crt")
    with pytest.raises(ConfigError) as error:
        Settings.from_env(minimal(MCP_OAUTH_CA_CERT=str(good)))
    assert error.value.problems == ["MCP_OAUTH_CA_CERT is set but MCP_OAUTH_ISSUER is not\nhint: set both, or neither"]


def test_the_systems_roots_with_verify_full_are_accepted() -> None:
    settings = Settings.from_env(minimal(MCP_DATABASE_SSLMODE="verify-full", MCP_DATABASE_SSLROOTCERT="system"))
    assert settings.database_conninfo()["sslrootcert"] == "system"


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(ConfigError) as error:
        Settings(max_rows=0, pool_min_size=3, pool_max_size=2, database_host=" ")
    assert error.value.problems == [
        "MCP_DATABASE_HOST=' ' is invalid: must not be empty",
        "MCP_MAX_ROWS='0' is invalid: must be between 1 and 10000",
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
        "both MCP_DATABASE_PASSWORD and MCP_DATABASE_PASSWORD_FILE are set (but are exclusive)\nhint: keep one"
    )
    with pytest.raises(ConfigError) as missing:
        Settings.from_env({"MCP_DATABASE_PASSWORD_FILE": str(tmp_path / "nope")})
    assert missing.value.problems[0].startswith(f"unable to read MCP_DATABASE_PASSWORD_FILE={tmp_path / 'nope'}:")
    assert Settings.from_env({"MCP_DATABASE_PASSWORD_FILE": str(secret)}).database_password == "from-file"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "line 1: an entry is not `name:key` or `name:sha256:<digest>`"),
        ("bad name:" + "k" * 32, "line 1: key name 'bad name' must be 1-64 letters"),
        ("alice:short", "line 1 (alice): the key is shorter than 16 characters"),
        ("a:sha256:" + "0" * 64 + " tools=drop_table", "line 1 (a): unknown tool drop_table (tools: describe_table"),
        ("a:" + "k" * 32 + "\na:" + "j" * 32, "key name 'a' appears more than once"),
        ("a:" + "k" * 32 + "\nb:" + "k" * 32, "two entries share the same key"),
    ],
    ids=["no-key", "bad-name", "short", "unknown-tool", "duplicate-name", "duplicate-key"],
)
def test_api_key_file_problems_never_show_the_key(raw: str, expected: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_api_keys(raw)
    assert expected in str(error.value)
    assert "k" * 20 not in str(error.value) and "short" not in str(error.value).replace("shorter", "")


def test_secrets_stay_out_of_reprs_and_errors() -> None:
    key = KeyEntry.from_secret("alice", "x" * 40)
    settings = Settings(database_password="p4ssw0rd-value", api_keys=(key,))
    assert "p4ssw0rd-value" not in repr(settings) and "x" * 40 not in repr(settings)
    assert repr(key) == (
        "KeyEntry(name='alice', tools=None, schemas=None, max_rows=None, expires=None, created=None, revoked=None)"
    )
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"MCP_DATABASE_PASSWORD": "", "MCP_API_KEYS": "alice:tiny-secret"})
    assert "tiny-secret" not in str(error.value) and "<redacted>" in str(error.value)


def test_unknown_variables_stop_the_server_with_the_nearest_name() -> None:
    env = minimal(MCP_MAX_ROW="5", MCP_PORT="1", MCP_API_KEYS_FILE="/x", MCP_STATEMENT_TIMEOUT_MS="100", HOME="/")
    assert unknown_variables(env) == ["MCP_MAX_ROW is not a setting of pgmcp\nhint: did you mean MCP_MAX_ROWS?"]
    with pytest.raises(ConfigError) as error:
        Settings.from_env(minimal(MCP_ALLOW_EXPLAIN_ANALYSE="true", MCP_QQQ="1"))
    assert error.value.problems == [
        "MCP_ALLOW_EXPLAIN_ANALYSE is not a setting of pgmcp\nhint: did you mean MCP_ALLOW_EXPLAIN_ANALYZE?",
        "MCP_QQQ is not a setting of pgmcp\nhint: every setting is listed in services/mcp/README.md",
    ]


def test_variables_of_mcp_clients_are_not_typos() -> None:
    """Claude Code hands its own MCP_TIMEOUT and MCP_TOOL_TIMEOUT down to a `--stdio` server."""
    assert unknown_variables({"MCP_TIMEOUT": "10000", "MCP_TOOL_TIMEOUT": "60000"}) == []
    assert Settings.from_env(minimal(MCP_TIMEOUT="10000")) == Settings(database_password="reader-password")


@pytest.mark.parametrize(
    ("old", "raw", "field", "new"),
    [
        ("MCP_STATEMENT_TIMEOUT_MS", "5000", "statement_timeout_ms", "MCP_STATEMENT_TIMEOUT=5s"),
        ("MCP_LOCK_TIMEOUT_MS", "250", "lock_timeout_ms", "MCP_LOCK_TIMEOUT=250ms"),
        ("MCP_POOL_TIMEOUT_MS", "1500", "pool_timeout_ms", "MCP_POOL_TIMEOUT=1500ms"),
        ("MCP_DATABASE_CONNECT_TIMEOUT_MS", "2000", "database_connect_timeout_ms", "MCP_DATABASE_CONNECT_TIMEOUT=2s"),
        ("MCP_STARTUP_TIMEOUT_MS", "120000", "startup_timeout_ms", "MCP_STARTUP_TIMEOUT=2m"),
    ],
)
def test_old_names_still_work_for_a_release_and_say_what_to_write(
    caplog: pytest.LogCaptureFixture, old: str, raw: str, field: str, new: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="pgmcp.config"):
        settings = Settings.from_env(minimal(**{old: raw}))
    assert getattr(settings, field) == int(raw)
    [record] = [record for record in caplog.records if record.name == "pgmcp.config"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"{old} is deprecated and goes in the next release: write {new} instead"


def test_an_old_and_a_new_name_together_are_an_error() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(minimal(MCP_STATEMENT_TIMEOUT="5s", MCP_STATEMENT_TIMEOUT_MS="5000"))
    assert error.value.problems == [
        "both MCP_STATEMENT_TIMEOUT and MCP_STATEMENT_TIMEOUT_MS are set\n"
        "hint: keep MCP_STATEMENT_TIMEOUT; MCP_STATEMENT_TIMEOUT_MS is its old name"
    ]
    with pytest.raises(ConfigError) as bad:
        Settings.from_env(minimal(MCP_LOCK_TIMEOUT_MS="1s"))
    assert bad.value.problems[0].startswith("MCP_LOCK_TIMEOUT_MS='1s' is invalid: not a whole number of milliseconds")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("250ms", 250), ("5s", 5000), ("1.5s", 1500), ("2m", 120_000), ("1h", 3_600_000), ("1d", 86_400_000), ("0", 0)],
)
def test_durations_take_a_unit(raw: str, expected: int) -> None:
    assert to_milliseconds(raw) == expected
    assert to_milliseconds(show_milliseconds(expected)) == expected


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("5000", "hint: write 5000ms or 5000s"),
        ("5 s", "hint: write a number and one of ms, s, m, h, d"),
        ("0.5ms", "hint: round it to whole milliseconds"),
        ("5sec", "hint: write a number and one of ms, s, m, h, d"),
    ],
)
def test_ambiguous_or_unknown_durations_are_refused_with_a_hint(raw: str, hint: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(minimal(MCP_STATEMENT_TIMEOUT=raw))
    [problem] = error.value.problems
    assert problem.startswith(f"MCP_STATEMENT_TIMEOUT={raw!r} is invalid: ") and f"\n{hint}" in problem


@pytest.mark.parametrize(
    ("raw", "expected"), [("4096", 4096), ("256KiB", 262_144), ("1MiB", 1_048_576), ("7000B", 7000)]
)
def test_sizes_are_bytes_or_iec_units(raw: str, expected: int) -> None:
    assert Settings.from_env(minimal(MCP_MAX_REQUEST_BYTES=raw)).max_request_bytes == expected
    assert to_bytes(show_bytes(expected)) == expected


@pytest.mark.parametrize(("raw", "hint"), [("256KB", "write KiB"), ("1M", "write MiB"), ("lots", "write bytes")])
def test_decimal_or_unknown_sizes_are_refused_with_a_hint(raw: str, hint: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(minimal(MCP_MAX_BYTES=raw))
    assert hint in error.value.problems[0]


def test_readme_configuration_table_is_current() -> None:
    """STYLE rule 15: the README's table is generated from config.py (`python -m pgmcp settings --update`)."""
    text = README.read_text()
    assert generated.README_BEGIN in text and generated.README_END in text, f"{README} lacks the generated markers"
    assert generated.update(text) == text, (
        "services/mcp/README.md is stale: run `python -m pgmcp settings --update services/mcp/README.md`"
    )


def test_every_kind_documents_what_it_allows() -> None:
    """The README's `allowed` column comes from each declaration's kind: ranges are written once, there."""
    table = generated.render_env_table()
    for spec in VARIABLES:
        assert spec.kind.allowed and f"| {spec.kind.allowed} |" in table
    assert "| `MCP_STATEMENT_TIMEOUT` | `5s` | 100ms to 10m |" in table
    assert "| `MCP_MAX_BYTES` | `256KiB` | 1KiB to 64MiB |" in table
