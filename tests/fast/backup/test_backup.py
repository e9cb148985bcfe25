"""A backup set of the session server: layout, manifest, snapshot-consistent counts, verification."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devtools.native_pg import NativePostgres
from pgbackup.__main__ import main
from pgbackup.catalog import scan
from pgbackup.clock import SystemClock
from pgbackup.errors import ExitCode
from pgbackup.manifest import Manifest
from pgbackup.restore import restore_set
from tests.fast.backup.helpers import EnvFactory, only_set, settings_of


def live_counts(pg: NativePostgres, database: str = "app") -> dict[str, int]:
    with psycopg.connect(pg.dsn("postgres", database)) as conn:
        tables = conn.execute(
            "SELECT schemaname, relname FROM pg_stat_user_tables WHERE schemaname NOT LIKE 'pg_%' ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{schema}.{table}": conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for schema, table in tables
        }


def test_set_layout(shared_set_dir: Path) -> None:
    [directory] = [path for path in (shared_set_dir / "sets").iterdir()]
    assert sorted(path.name for path in directory.iterdir()) == [
        "db-app.dump",
        "db-postgres.dump",
        "globals.sql",
        "manifest.json",
        "verification.json",
    ]
    verification = json.loads((directory / "verification.json").read_text())
    assert verification["ok"] is True
    assert verification["checks"] == ["checksums", "pg_restore --list"]


def test_manifest_counts_are_exact(pg: NativePostgres, shared_set_dir: Path) -> None:
    manifest = Manifest.read(next((shared_set_dir / "sets").iterdir()))
    app = manifest.database("app")
    assert {f"{table.schema}.{table.table}": table.rows for table in app.tables} == live_counts(pg)
    assert app.objects["tables"] == 4 and app.objects["views"] >= 1 and app.objects["indexes"] >= 4
    assert app.owner == "postgres" and app.encoding == "UTF8"
    assert manifest.database("postgres").tables == ()
    assert manifest.server_version_num // 10000 == 18
    assert manifest.pg_dump_version.startswith("pg_dump (PostgreSQL) 18")
    assert manifest.bytes == sum(entry.bytes for entry in manifest.files) > 0
    assert len({entry.sha256 for entry in manifest.files}) == 3


def test_roles_are_recorded_without_passwords(shared_set_dir: Path) -> None:
    directory = next((shared_set_dir / "sets").iterdir())
    manifest = Manifest.read(directory)
    roles = {role.name: role for role in manifest.roles}
    assert {"postgres", "app_owner", "mcp_reader", "backup_operator"} <= roles.keys()
    assert "default_transaction_read_only=on" in roles["mcp_reader"].settings
    assert roles["mcp_reader"].connection_limit == 20 and not roles["mcp_reader"].inherit
    assert {membership.role for membership in roles["backup_operator"].member_of} == {
        "pg_monitor",
        "pg_read_all_data",
        "pg_use_reserved_connections",
    }
    assert manifest.role_passwords is False
    globals_sql = (directory / "globals.sql").read_text()
    assert "CREATE ROLE mcp_reader;" in globals_sql
    assert "PASSWORD" not in globals_sql.upper().replace("NO ROLE PASSWORDS", "")


def test_backup_command_writes_private_files_and_records_state(
    make_env: EnvFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env()
    assert main(["backup"], environ=env) == ExitCode.OK
    settings = settings_of(env)
    backup_set = only_set(settings)
    assert f"backup set {backup_set.id}: verified" in capsys.readouterr().out
    assert stat.S_IMODE(backup_set.path.stat().st_mode) == 0o750
    for path in backup_set.path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    state = json.loads(settings.state_file.read_text())
    assert state["last_outcome"] == "success" and state["last_success_set"] == backup_set.id
    assert state["successes_total"] == 1 and state["consecutive_failures"] == 0

    assert main(["list", "--json"], environ=env) == ExitCode.OK
    listed = json.loads(capsys.readouterr().out)["sets"]
    assert [(row["id"], row["verified"], row["databases"]) for row in listed] == [(backup_set.id, "yes", ["app"])]


def test_verify_detects_a_flipped_byte(
    set_copy: Path, make_env: EnvFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env(BACKUP_DIR=str(set_copy))
    assert main(["verify"], environ=env) == ExitCode.OK
    backup_set = only_set(settings_of(env))
    archive = backup_set.path / "db-app.dump"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", "--set", backup_set.id], environ=env) == ExitCode.VERIFY
    assert "db-app.dump: sha256" in capsys.readouterr().out
    assert scan(settings_of(env).sets_dir).sets[0].verified is False
    assert main(["verify", "--set", "latest"], environ=env) == ExitCode.NOT_FOUND


def test_a_missing_database_is_named(make_env: EnvFactory, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "--skip-checks"], environ=make_env(BACKUP_DATABASES="app,no_such_db")) == ExitCode.BACKUP
    assert "unable to back up database(s) no_such_db: they do not exist" in capsys.readouterr().err


def test_a_refused_password_is_an_unreachable_source(make_env: EnvFactory, capsys: pytest.CaptureFixture[str]) -> None:
    env = make_env(BACKUP_PGPASSWORD="not-the-password-6f1c")
    assert main(["backup"], environ=env) == ExitCode.UNREACHABLE
    output = capsys.readouterr()
    assert "unable to connect to 127.0.0.1" in output.err and "as backup_operator" in output.err
    assert "password authentication failed" in output.err
    assert "not-the-password-6f1c" not in output.err + output.out


def test_counts_come_from_the_dump_snapshot_under_concurrent_writes(
    pg: NativePostgres, make_env: EnvFactory, superuser: psycopg.Connection[Any]
) -> None:
    """Rows keep arriving while the set is taken; the counts must equal what the archive restores."""
    superuser.execute("DROP DATABASE IF EXISTS backup_busy WITH (FORCE)")
    superuser.execute("CREATE DATABASE backup_busy")
    superuser.execute("GRANT CONNECT ON DATABASE backup_busy TO backup_operator")
    stop = threading.Event()
    try:
        with psycopg.connect(pg.dsn("postgres", "backup_busy"), autocommit=True) as setup:
            setup.execute("CREATE TABLE events (id bigserial PRIMARY KEY, payload text)")
            setup.execute("INSERT INTO events (payload) SELECT repeat('x', 200) FROM generate_series(1, 20000)")

        def write() -> None:
            with psycopg.connect(pg.dsn("postgres", "backup_busy"), autocommit=True) as writer:
                while not stop.is_set():
                    writer.execute("INSERT INTO events (payload) SELECT 'y' FROM generate_series(1, 50)")

        writer = threading.Thread(target=write)
        writer.start()
        env = make_env(BACKUP_DATABASES="backup_busy")
        try:
            assert main(["backup"], environ=env) == ExitCode.OK
        finally:
            stop.set()
            writer.join()
        counted = only_set(settings_of(env)).manifest.database("backup_busy").tables[0].rows
        final = live_counts(pg, "backup_busy")["public.events"]
        assert 20000 <= counted <= final
        result = restore_set(
            settings_of(make_env(role="postgres", BACKUP_DIR=env["BACKUP_DIR"])),
            selector="latest",
            target_db="backup_busy_restored",
            source_db=None,
            force=False,
            clock=SystemClock(),
        )
        assert result.rows == counted
    finally:
        superuser.execute("DROP DATABASE IF EXISTS backup_busy WITH (FORCE)")
        superuser.execute("DROP DATABASE IF EXISTS backup_busy_restored WITH (FORCE)")
