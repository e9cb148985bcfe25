"""`make reader-role` (`pgmcp.reader_role`): the reader and backup roles on a database the stack does not own.

Each test makes a fresh database with an application role of its own (a schema, a table, temporary tables through
PUBLIC, as on any new database) on a private server, runs the command, and checks the catalog afterwards.
"""

from __future__ import annotations

import io
import logging
import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from psycopg import sql

from devtools.native_pg import BIN_DIR, NativePostgres
from devtools.paths import REPO
from pgmcp import reader_role, role_audit
from pgmcp.config import Settings
from pgmcp.db import Database
from pgmcp.errors import ExitCode, StartupRefused
from pgmcp.layers import ALL_LAYERS
from tests.fixtures.pg import native_pg_fixture

own_pg = native_pg_fixture(scope="module", demo_orders=10, doc="A server whose roles and ACLs these tests change.")


@dataclass(frozen=True)
class Target:
    """A fresh database `name`, its application role `app` (password `app_password`), the role names to create."""

    server: NativePostgres
    name: str
    app: str
    app_password: str
    reader: str
    backup: str
    secrets: Path

    def admin_url(self) -> str:
        return self.server.dsn(database=self.name)

    def dsn(self, role: str, password: str | None) -> str:
        """The database as `role`; with no password, libpq takes PGPASSWORD."""
        params = {**psycopg.conninfo.conninfo_to_dict(self.admin_url()), "user": role, "password": password}
        return psycopg.conninfo.make_conninfo(**{key: value for key, value in params.items() if value is not None})

    def password(self, secret: str) -> str:
        return (self.secrets / secret).read_text().strip()

    def run(self, *extra: str, environ: dict[str, str] | None = None) -> int:
        argv = ["--reader", self.reader, "--backup", self.backup, "--secrets-dir", str(self.secrets), *extra]
        return reader_role.main(argv, {"ADMIN_URL": self.admin_url(), **(environ or {})})

    def superuser(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url(), autocommit=True)


@pytest.fixture
def target(own_pg: NativePostgres, tmp_path: Path) -> Iterator[Target]:
    tag = uuid.uuid4().hex[:8]
    made = Target(
        own_pg, f"ext_{tag}", f"app_{tag}", uuid.uuid4().hex, f"reader_{tag}", f"backup_{tag}", tmp_path / "secrets"
    )
    with psycopg.connect(own_pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(made.name)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(made.app), sql.Literal(made.app_password))
        )
    with made.superuser() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA sales AUTHORIZATION {}").format(sql.Identifier(made.app)))
    with psycopg.connect(made.dsn(made.app, made.app_password), autocommit=True) as conn:
        conn.execute("CREATE TABLE sales.invoices (id int PRIMARY KEY, total numeric)")
        conn.execute("INSERT INTO sales.invoices VALUES (1, 9.5)")
    yield made
    with psycopg.connect(own_pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(made.name)))
        for role in (made.app, made.reader, made.backup):  # mcp_reader and backup_operator are the server's own
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def catalog(target: Target) -> list[tuple[Any, ...]]:
    """The roles, memberships, role settings and ACLs a run may change (cluster-wide and in the database)."""
    with target.superuser() as conn:
        return conn.execute(
            """
            SELECT 'role', rolname || row(rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolcanlogin,
                   rolreplication, rolbypassrls, rolconnlimit)::text FROM pg_roles
            UNION ALL SELECT 'member', roleid::regrole || '>' || member::regrole FROM pg_auth_members
            UNION ALL SELECT 'setting', setrole::regrole || array_to_string(setconfig, ',') FROM pg_db_role_setting
            UNION ALL SELECT 'database', datname || coalesce(datacl::text, '(default)') FROM pg_database
            UNION ALL SELECT 'schema', nspname || coalesce(nspacl::text, '(default)') FROM pg_namespace
            UNION ALL SELECT 'table', relname || coalesce(relacl::text, '(default)') FROM pg_class WHERE relkind = 'r'
            UNION ALL SELECT 'default', defaclnamespace::regnamespace || defaclacl::text FROM pg_default_acl
            ORDER BY 1, 2
            """
        ).fetchall()


def audit(dsn: str) -> list[role_audit.RoleProblem]:
    async def _audit() -> list[role_audit.RoleProblem]:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await role_audit.audit_role(conn)

    return anyio.run(_audit)


def public_has_temp(target: Target) -> bool:
    with target.superuser() as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a"
            " WHERE d.datname = current_database() AND a.grantee = 0 AND a.privilege_type = 'TEMPORARY')"
        ).fetchone()
    assert row is not None
    return bool(row[0])


def assert_app_keeps_working(target: Target) -> None:
    with psycopg.connect(target.dsn(target.app, target.app_password), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE scratch AS SELECT * FROM sales.invoices")
        conn.execute("INSERT INTO sales.invoices SELECT id + 1, total FROM scratch")
        conn.execute("UPDATE sales.invoices SET total = total + 1")
        conn.execute("CREATE TABLE sales.notes (id int)")  # its schema's owner still creates in it
        rows = conn.execute("SELECT count(*) FROM sales.invoices").fetchone()
    assert rows == (2,)


@pytest.fixture
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))


def test_a_fresh_database_gets_both_roles_and_keeps_the_app_working(
    target: Target, no_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert public_has_temp(target)
    assert target.run("--force") == ExitCode.OK
    out = capsys.readouterr().out
    granted = next(line for line in out.splitlines() if line.startswith("GRANT TEMPORARY ON DATABASE"))
    assert granted.startswith(f'GRANT TEMPORARY ON DATABASE "{target.name}" TO ') and f'"{target.app}"' in granted
    assert target.reader not in granted and target.backup not in granted
    assert f'REVOKE TEMPORARY ON DATABASE "{target.name}" FROM PUBLIC;' in out
    assert f"audit: role {target.reader} passes the startup audit" in out
    for secret in ("mcp_reader_password", "backup_password"):
        assert target.password(secret) not in out
        assert (target.secrets / secret).stat().st_mode & 0o777 == 0o600
    assert "SCRAM-SHA-256" not in out and "<redacted>" in out
    assert not public_has_temp(target)
    assert audit(target.dsn(target.reader, target.password("mcp_reader_password"))) == []
    with psycopg.connect(target.dsn(target.reader, target.password("mcp_reader_password"))) as conn:
        assert conn.execute("SELECT total::text FROM sales.invoices").fetchall() == [("9.5",)]
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    assert_app_keeps_working(target)


def test_another_read_only_reader_is_not_granted_temp_by_name(
    target: Target, no_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second MCP reader on the same server (its sessions start read-only) loses TEMP with PUBLIC's and is told
    so in a note; granting it TEMP by name would make its own startup audit fail."""
    other = f"{target.reader}_two"
    with target.superuser() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(other)))
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(sql.Identifier(other)))
    try:
        assert target.run("--force") == ExitCode.OK
        out = capsys.readouterr().out
        granted = next(line for line in out.splitlines() if line.startswith("GRANT TEMPORARY ON DATABASE"))
        assert f'"{target.app}"' in granted and other not in granted
        note = next(line for line in out.splitlines() if "start read-only sessions" in line)
        assert other in note and f'GRANT TEMPORARY ON DATABASE "{target.name}" TO each one that needs it' in note
        with target.superuser() as conn:
            row = conn.execute(
                "SELECT has_database_privilege(%s, current_database(), 'TEMPORARY')", (other,)
            ).fetchone()
        assert row == (False,)
    finally:
        with target.superuser() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(other)))


def test_a_second_run_changes_nothing(target: Target, no_terminal: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert target.run("--force") == ExitCode.OK
    before = catalog(target)
    capsys.readouterr()
    assert target.run() == ExitCode.OK  # nothing to ask: no terminal, no FORCE, and still fine
    out = capsys.readouterr().out
    assert "are already right: nothing to change" in out and "passes the startup audit" in out
    assert catalog(target) == before


def test_without_a_terminal_or_force_it_refuses_and_changes_nothing(
    target: Target, no_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    before = catalog(target)
    assert target.run() == ExitCode.USAGE
    captured = capsys.readouterr()
    assert "no terminal to ask on" in captured.err and "FORCE=1" in captured.err
    assert f'CREATE ROLE "{target.reader}"' in captured.out  # the SQL it would have run
    assert catalog(target) == before


def test_where_public_has_no_temp_it_leaves_public_alone(
    target: Target, no_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with target.superuser() as conn:
        conn.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(target.name)))
    assert target.run("--force") == ExitCode.OK
    out = capsys.readouterr().out
    assert "PUBLIC" not in out.split("audit:")[0]
    assert audit(target.dsn(target.reader, target.password("mcp_reader_password"))) == []


def test_allow_public_temp_keeps_public_and_the_audit_warns(
    target: Target, no_terminal: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pgmcp.role_audit"):
        assert target.run("--force", environ={"MCP_ALLOW_PUBLIC_TEMP": "true"}) == ExitCode.OK
    assert public_has_temp(target)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("through PUBLIC" in line and "MCP_ALLOW_PUBLIC_TEMP=true" in line for line in warnings)
    problems = audit(target.dsn(target.reader, target.password("mcp_reader_password")))
    assert [problem.code for problem in problems] == [role_audit.PUBLIC_TEMP]  # refused without the setting


def test_an_existing_reader_with_extra_privileges_is_shown_what_is_revoked(
    target: Target, no_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with target.superuser() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD 'old-password-0123456789'").format(
                sql.Identifier(target.reader)
            )
        )
        for grant in (
            "GRANT CREATE ON SCHEMA sales TO {}",
            "GRANT {app} TO {}",
            "GRANT INSERT ON sales.invoices TO {}",
        ):
            conn.execute(sql.SQL(grant).format(sql.Identifier(target.reader), app=sql.Identifier(target.app)))
    assert target.run("--force") == ExitCode.OK
    out = capsys.readouterr().out
    reader = f'"{target.reader}"'
    assert f"REVOKE CREATE ON SCHEMA sales FROM {reader};" in out
    assert f'REVOKE "{target.app}" FROM {reader};' in out
    assert f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE sales.invoices FROM {reader};" in out
    assert f"ALTER ROLE {reader} NOSUPERUSER NOCREATEDB" in out
    assert f"ALTER ROLE {reader} PASSWORD '<redacted>';" in out
    assert audit(target.dsn(target.reader, target.password("mcp_reader_password"))) == []
    assert_app_keeps_working(target)


def test_the_backup_role_dumps_the_database(target: Target, no_terminal: None) -> None:
    assert target.run("--force") == ExitCode.OK
    env = {**os.environ, "PGPASSWORD": target.password("backup_password")}
    dumped = subprocess.run(
        [str(BIN_DIR / "pg_dump"), "--no-password", f"--dbname={target.dsn(target.backup, None)}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert dumped.returncode == 0, dumped.stderr
    assert "COPY sales.invoices" in dumped.stdout and "9.5" in dumped.stdout


def test_make_reader_role_without_admin_url_prints_the_command() -> None:
    env = {name: value for name, value in os.environ.items() if name != "ADMIN_URL"}
    result = subprocess.run(
        ["make", "--no-print-directory", "reader-role"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert f"usage: {reader_role.MAKE_USAGE}" in result.stderr
    assert "ADMIN_URL is not set" in result.stderr


README_URL = "postgresql://admin@db.example.com:5432/app?sslmode=verify-full"


def test_the_readme_commands_run(target: Target, tmp_path: Path) -> None:
    """The main README's block, on the fresh database: without a terminal the first line refuses, FORCE=1 runs."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("```bash\n# reader-role:", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    assert len(lines) == 2 and all(README_URL in line for line in lines)
    env = {**os.environ, "SECRETS_DIR": str(target.secrets)}
    statuses = []
    for line in lines:
        command = line.replace(f'"{README_URL}"', shlex.quote(target.admin_url()))
        result = subprocess.run(
            ["bash", "-c", command], cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
        statuses.append(result.returncode)
        assert target.password("mcp_reader_password") not in result.stdout + result.stderr
    assert statuses == [ExitCode.USAGE, ExitCode.OK]
    with target.superuser() as conn:
        rows = conn.execute(
            "SELECT has_table_privilege('mcp_reader', 'sales.invoices', 'SELECT'), "
            "has_database_privilege('mcp_reader', current_database(), 'TEMPORARY')"
        ).fetchone()
    assert rows == (True, False)


@pytest.mark.parametrize("allowed", [True, False], ids=["MCP_ALLOW_PUBLIC_TEMP=true", "default"])
def test_the_server_starts_on_public_temp_only_when_allowed(
    target: Target, no_terminal: None, caplog: pytest.LogCaptureFixture, allowed: bool
) -> None:
    assert target.run("--force", environ={"MCP_ALLOW_PUBLIC_TEMP": "true"}) == ExitCode.OK
    caplog.clear()  # the command's own audit warned once already
    settings = Settings(
        database_host=target.server.host,
        database_port=target.server.port,
        database_name=target.name,
        database_user=target.reader,
        database_password=target.password("mcp_reader_password"),
        pool_min_size=1,
        pool_max_size=2,
        startup_timeout_ms=5000,
        allow_public_temp=allowed,
    )

    async def start() -> None:
        database = Database(settings, ALL_LAYERS)
        await database.open()
        await database.close()

    with caplog.at_level(logging.WARNING, logger="pgmcp"):
        if allowed:
            anyio.run(start)
        else:
            with pytest.raises(StartupRefused, match="through PUBLIC"):
                anyio.run(start)
    accepted = [record for record in caplog.records if "accepted (MCP_ALLOW_PUBLIC_TEMP=true)" in record.getMessage()]
    assert len(accepted) == (1 if allowed else 0)
