"""`make external` and `make bundled` (ops/external.sh), and what external mode changes, without a database:
the URL files it writes (and that both services accept them), every wrong argument refused before anything is
written, the Compose model ops/compose.sh builds in each mode (with a user's override layered last), and the
commands that concern only the bundled postgres saying so. tests/stack/test_external.py runs it for real."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.tls import CertificateAuthority
from pgbackup.config import Settings as BackupSettings
from pgmcp.config import Settings as McpSettings

REPO = Path(__file__).resolve().parents[3]
URL_FILES = ("mcp_database_url", "backup_database_url", "restore_database_url")
TLS = "sslmode=verify-full&sslrootcert=/run/secrets/database_ca"
IMAGES = {"POSTGRES_IMAGE": "postgres:18.6-bookworm", "PYTHON_IMAGE": "python:3.11-slim-bookworm"}


def run(script: str, *args: str, secrets: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "ops" / script), *args],
        env={**os.environ, "SECRETS_DIR": str(secrets), **IMAGES, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    return CertificateAuthority.create("your server's CA").write(tmp_path / "db-ca.crt")


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    return directory


def external(secrets: Path, url: str, ca: str, admin: str = "postgres") -> subprocess.CompletedProcess[str]:
    return run("external.sh", url, ca, admin, secrets=secrets)


def test_it_writes_a_url_per_service_with_verify_full_and_the_ca(secrets: Path, ca: Path) -> None:
    result = external(secrets, "postgresql://db.example.com:5432/app", str(ca))
    assert result.returncode == 0, result.stderr
    written = {name: (secrets / name).read_text().strip() for name in URL_FILES}
    assert written == {
        "mcp_database_url": f"postgresql://mcp_reader@db.example.com:5432/app?{TLS}",
        "backup_database_url": f"postgresql://backup_operator@db.example.com:5432/app?{TLS}",
        "restore_database_url": f"postgresql://postgres@db.example.com:5432/postgres?{TLS}",
    }
    assert (secrets / "database_ca.crt").read_bytes().strip() == ca.read_bytes().strip()
    assert (secrets / "database_admin_password").read_text() == ""
    for path in secrets.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert "make reader-role ADMIN_URL=" in result.stderr and "then" not in result.stdout


def test_host_lists_and_libpq_parameters_are_kept(secrets: Path, ca: Path) -> None:
    url = (
        "postgres://a.example.com:5432,b.example.com:5433/sales?target_session_attrs=primary&load_balance_hosts=random"
    )
    assert external(secrets, url, str(ca), "dbadmin").returncode == 0
    assert (secrets / "mcp_database_url").read_text().strip() == (
        "postgres://mcp_reader@a.example.com:5432,b.example.com:5433/sales?target_session_attrs=primary&"
        f"load_balance_hosts=random&{TLS}"
    )
    assert (
        (secrets / "restore_database_url")
        .read_text()
        .strip()
        .startswith("postgres://dbadmin@a.example.com:5432,b.example.com:5433/postgres?target_session_attrs=primary&")
    )


def test_a_chosen_sslmode_is_kept_and_ca_system_uses_the_public_cas(secrets: Path) -> None:
    assert external(secrets, "postgresql://db.example.com/app?sslmode=verify-ca", "system").returncode == 0
    assert (secrets / "mcp_database_url").read_text().strip() == (
        "postgresql://mcp_reader@db.example.com/app?sslmode=verify-ca&sslrootcert=system"
    )
    assert (secrets / "database_ca.crt").read_text() == ""


def test_both_services_accept_what_it_writes(secrets: Path, ca: Path) -> None:
    """The URL files as the containers read them (MCP_DATABASE_URL_FILE, BACKUP_DATABASE_URL_FILE), the split
    settings gone as compose/external.yaml removes them: each service's own validation passes."""
    url = "postgresql://a.example.com:5432,b.example.com:5433/app?target_session_attrs=primary"
    assert external(secrets, url, str(ca)).returncode == 0
    password = secrets / "password"
    password.write_text("a-password-of-the-reader\n")
    mcp = McpSettings.from_env(
        {
            "MCP_DATABASE_URL_FILE": str(secrets / "mcp_database_url"),
            "MCP_DATABASE_PASSWORD_FILE": str(password),
            "MCP_API_KEYS": "default:0123456789abcdef0123",
        }
    )
    assert mcp.role == "mcp_reader" and mcp.dbname == "app"
    assert mcp.database_target() == "mcp_reader@a.example.com:5432,b.example.com:5433/app"
    backup = BackupSettings.from_env(
        {
            "BACKUP_DATABASE_URL_FILE": str(secrets / "backup_database_url"),
            "BACKUP_PGPASSWORD_FILE": str(password),
            "BACKUP_DIR": str(secrets),
        }
    )
    assert backup.target.user == "backup_operator"
    assert backup.target.get("sslmode") == "verify-full"


@pytest.mark.parametrize(
    ("url", "ca_arg", "words"),
    [
        ("", "CA", "no URL given"),
        ("db.example.com:5432/app", "CA", "must be a libpq URI"),
        ("postgresql://admin:Hunter2pw@db.example.com/app", "CA", "URL holds a user or password"),
        ("postgresql://db.example.com", "CA", "URL names no database"),
        ("postgresql://db.example.com/?sslmode=require", "CA", "URL names no database"),
        ("postgresql://db.example.com/app?sslrootcert=/etc/ssl/ca.crt", "CA", "give the CA as CA=<file>|system"),
        ("postgresql://db.example.com/app?password=Hunter2pw", "CA", "URL sets password"),
        ("postgresql://db.example.com/app", "", "no CA given"),
    ],
)
def test_a_wrong_argument_is_refused_with_the_usage_and_nothing_is_written(
    secrets: Path, ca: Path, url: str, ca_arg: str, words: str
) -> None:
    result = external(secrets, url, str(ca) if ca_arg else "")
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "usage: make external URL=postgresql://HOST[:PORT]/DATABASE CA=<ca.crt>|system" in result.stderr
    assert "Hunter2pw" not in result.stderr + result.stdout
    assert list(secrets.iterdir()) == []


def test_a_ca_that_is_not_a_certificate_is_refused(secrets: Path, tmp_path: Path) -> None:
    key = tmp_path / "ca.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a certificate\n-----END PRIVATE KEY-----\n")
    for ca_arg, words in ((str(key), "is not a PEM certificate"), (str(tmp_path / "missing.crt"), "unable to read")):
        result = external(secrets, "postgresql://db.example.com/app", ca_arg)
        assert result.returncode == 1 and words in result.stderr, result.stderr
    assert list(secrets.iterdir()) == []


def compose_model(secrets: Path, **env: str) -> dict[str, Any]:
    result = run("compose.sh", "config", "--format", "json", secrets=secrets, **env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_external_mode_starts_no_postgres_and_passes_only_the_urls(secrets: Path, ca: Path) -> None:
    assert external(secrets, "postgresql://db.example.com/app", str(ca)).returncode == 0
    model = compose_model(secrets, COMPOSE_PROFILES="restore")
    assert set(model["services"]) == {"mcp", "backup", "restore"}
    mcp, backup, restore = (model["services"][name] for name in ("mcp", "backup", "restore"))
    assert mcp["environment"]["MCP_DATABASE_URL_FILE"] == "/run/secrets/mcp_database_url"
    assert not [name for name in mcp["environment"] if name.startswith("MCP_DATABASE_") and name.endswith(
        ("HOST", "PORT", "NAME", "USER", "SSLMODE", "SSLROOTCERT"))]  # fmt: skip
    assert backup["environment"]["BACKUP_DATABASE_URL_FILE"] == "/run/secrets/backup_database_url"
    assert restore["environment"]["BACKUP_DATABASE_URL_FILE"] == "/run/secrets/restore_database_url"
    assert restore["environment"]["BACKUP_PGPASSWORD_FILE"] == "/run/secrets/database_admin_password"
    for service in (backup, restore):
        assert not {"BACKUP_PGHOST", "BACKUP_PGPORT", "BACKUP_PGUSER", "BACKUP_PGSSLMODE"} & set(service["environment"])
    for service in (mcp, backup, restore):
        assert "depends_on" not in service
        assert "backend" not in service["networks"] and "egress" in service["networks"]
    assert {secret["source"] for secret in mcp["secrets"]} == {
        "mcp_database_url", "mcp_reader_password", "mcp_api_keys", "database_ca"}  # fmt: skip
    assert "internal" not in model["networks"]["egress"]


def test_the_bundled_mode_is_unchanged_and_make_bundled_returns_to_it(secrets: Path, ca: Path) -> None:
    bundled = compose_model(secrets)
    assert "postgres" in bundled["services"]
    assert bundled["services"]["mcp"]["environment"]["MCP_DATABASE_HOST"] == "postgres"
    assert external(secrets, "postgresql://db.example.com/app", str(ca)).returncode == 0
    assert "postgres" not in compose_model(secrets)["services"]
    off = run("external.sh", "--off", secrets=secrets)
    assert off.returncode == 0, off.stderr
    assert not [path.name for path in secrets.iterdir() if path.name in (*URL_FILES, "database_ca.crt")]
    assert compose_model(secrets) == bundled


@pytest.mark.parametrize("mode", ["bundled", "external"])
def test_a_users_override_file_is_layered_last(secrets: Path, ca: Path, tmp_path: Path, mode: str) -> None:
    override = tmp_path / "compose.override.yaml"
    override.write_text("services:\n  mcp:\n    mem_limit: 768m\n    environment:\n      MCP_MAX_ROWS: '42'\n")
    if mode == "external":
        assert external(secrets, "postgresql://db.example.com/app", str(ca)).returncode == 0
    mcp = compose_model(secrets, PGSTACK_OVERRIDE_FILE=str(override))["services"]["mcp"]
    assert mcp["environment"]["MCP_MAX_ROWS"] == "42"
    assert mcp["mem_limit"] == str(768 * 1024 * 1024)


@pytest.mark.parametrize(
    ("script", "args", "words"),
    [
        ("psql.sh", (), "external mode: the stack runs no postgres to open psql in"),
        ("rotate-password.sh", ("mcp_reader",), "external mode: the roles live on your server"),
        ("rotate-tls.sh", (), "external mode: your server's certificate is yours to rotate"),
        ("restore.sh", ("--set", "latest"), "no password for the restore's admin role"),
    ],
)
def test_what_concerns_the_bundled_postgres_says_so_in_external_mode(
    secrets: Path, ca: Path, script: str, args: tuple[str, ...], words: str
) -> None:
    assert external(secrets, "postgresql://db.example.com/app", str(ca)).returncode == 0
    result = run(script, *args, secrets=secrets)
    assert result.returncode == 1 and words in result.stderr, result.stderr
    assert "hint: " in result.stderr
