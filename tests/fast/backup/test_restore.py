"""The restore job: refuses an existing database without --force, checks checksums before it starts,
replaces only after the copy verifies, and recreates missing roles from the set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgbackup.__main__ import main
from pgbackup.cancel import Cancellation
from pgbackup.clock import SystemClock
from pgbackup.dump import take_backup
from pgbackup.errors import ExitCode
from tests.fast.backup.helpers import EnvFactory, backup_env, only_set, settings_of, superuser_connect

TARGET = "restore_target"
USAGE = "hint: usage: make restore BACKUP=<id|latest> SOURCE_DB=<db> TARGET_DB=<new-name> [FORCE=1]"


def databases(pg: NativePostgres) -> set[str]:
    with superuser_connect(pg) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}


@pytest.fixture
def target(superuser: psycopg.Connection[Any]) -> Iterator[str]:
    superuser.execute(f"DROP DATABASE IF EXISTS {TARGET} WITH (FORCE)")
    yield TARGET
    superuser.execute(f"DROP DATABASE IF EXISTS {TARGET} WITH (FORCE)")


def restore(make_env: EnvFactory, backup_dir: Path, *args: str) -> int:
    return main(["restore", *args], environ=make_env(role="postgres", BACKUP_DIR=str(backup_dir)))


def test_refuses_an_existing_database_without_force(
    pg: NativePostgres,
    make_env: EnvFactory,
    shared_set_dir: Path,
    superuser: psycopg.Connection[Any],
    target: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    superuser.execute(f"CREATE DATABASE {target}")
    with superuser_connect(pg, target) as conn:
        conn.execute("CREATE TABLE keep_me (id int)")
    assert restore(make_env, shared_set_dir, "--set", "latest", "--target-db", target) == ExitCode.TARGET_EXISTS
    error = capsys.readouterr().err
    assert f"unable to restore into {target}: the database exists" in error and "FORCE=1" in error
    assert USAGE in error
    with superuser_connect(pg, target) as conn:
        assert conn.execute("SELECT to_regclass('keep_me') IS NOT NULL, to_regclass('shop.orders')").fetchone() == (
            True,
            None,
        )
    assert not any(name.startswith("pgbackup_restore_") for name in databases(pg))


def test_force_replaces_the_database_with_the_verified_copy(
    pg: NativePostgres, make_env: EnvFactory, shared_set_dir: Path, superuser: psycopg.Connection[Any], target: str
) -> None:
    superuser.execute(f"CREATE DATABASE {target}")
    with superuser_connect(pg, target) as conn:
        conn.execute("CREATE TABLE keep_me (id int)")
    assert restore(make_env, shared_set_dir, "--target-db", target, "--force") == ExitCode.OK
    with superuser_connect(pg, target) as conn:
        row = conn.execute("SELECT to_regclass('keep_me'), (SELECT count(*) FROM shop.orders)").fetchone()
    assert row == (None, 2000)


def test_a_corrupted_file_is_detected_before_anything_is_created(
    pg: NativePostgres, make_env: EnvFactory, set_copy: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backup_set = only_set(settings_of(make_env(BACKUP_DIR=str(set_copy))))
    archive = backup_set.path / "db-app.dump"
    data = bytearray(archive.read_bytes())
    data[-100] ^= 0xFF
    archive.write_bytes(bytes(data))
    before = databases(pg)
    assert restore(make_env, set_copy, "--set", backup_set.id, "--target-db", target) == ExitCode.VERIFY
    error = capsys.readouterr().err
    assert f"unable to use backup set {backup_set.id}: it does not match its manifest: db-app.dump: sha256" in error
    assert databases(pg) == before


def test_a_truncated_file_is_detected(
    make_env: EnvFactory, set_copy: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backup_set = only_set(settings_of(make_env(BACKUP_DIR=str(set_copy))))
    archive = backup_set.path / "db-app.dump"
    size = archive.stat().st_size
    archive.write_bytes(archive.read_bytes()[:-10])
    # the set was verified when written; restore checks again and catches what happened since
    assert restore(make_env, set_copy, "--target-db", target) == ExitCode.VERIFY
    assert f"db-app.dump: {size - 10} bytes on disk, {size} in the manifest" in capsys.readouterr().err


def test_unknown_set_and_protected_targets(
    make_env: EnvFactory, shared_set_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert restore(make_env, shared_set_dir, "--set", "20000101T000000Z", "--target-db", "x") == ExitCode.NOT_FOUND
    error = capsys.readouterr().err
    assert "unable to find backup set '20000101T000000Z'" in error and USAGE in error
    assert restore(make_env, shared_set_dir, "--target-db", "template1") == ExitCode.RESTORE
    assert restore(make_env, shared_set_dir, "--target-db", "postgres", "--force") == ExitCode.RESTORE
    assert "it is the maintenance database" in capsys.readouterr().err
    assert restore(make_env, shared_set_dir, "--target-db", "x", "--source-db", "nope") == ExitCode.USAGE
    error = capsys.readouterr().err
    set_id = only_set(settings_of(make_env(BACKUP_DIR=str(shared_set_dir)))).id
    assert f"unable to restore database 'nope': set {set_id} holds app, postgres" in error
    assert "SOURCE_DB (--source-db)" in error and USAGE in error


def test_a_non_superuser_is_refused_with_a_hint(
    make_env: EnvFactory, shared_set_dir: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env(BACKUP_DIR=str(shared_set_dir))
    assert main(["restore", "--target-db", target], environ=env) == ExitCode.RESTORE
    assert "needs a superuser" in capsys.readouterr().err


def test_missing_roles_are_recreated_from_the_set(private_pg: NativePostgres, tmp_path: Path) -> None:
    """A role dropped since the backup comes back with its attributes, settings and memberships."""
    with superuser_connect(private_pg) as conn:
        conn.execute("DROP ROLE IF EXISTS report_reader")
        conn.execute("CREATE ROLE report_reader LOGIN CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00'")
        conn.execute('ALTER ROLE report_reader SET search_path = shop, "$user", public')
        conn.execute("ALTER ROLE report_reader SET statement_timeout = '5s'")
        conn.execute("GRANT pg_read_all_data TO report_reader WITH INHERIT FALSE")
        conn.execute("GRANT CONNECT ON DATABASE app TO report_reader")
        expected = conn.execute(ROLE_QUERY).fetchone()
    backup_dir = tmp_path / "backups"
    assert main(["backup"], environ=backup_env(private_pg, backup_dir)) == ExitCode.OK
    with superuser_connect(private_pg) as conn:
        conn.execute("REVOKE CONNECT ON DATABASE app FROM report_reader")
        conn.execute("DROP ROLE report_reader")
    try:
        env = backup_env(private_pg, backup_dir, "postgres")
        assert main(["restore", "--target-db", "app_with_roles"], environ=env) == ExitCode.OK
        with superuser_connect(private_pg) as conn:
            assert conn.execute(ROLE_QUERY).fetchone() == expected
            assert conn.execute(
                "SELECT has_database_privilege('report_reader', 'app_with_roles', 'CONNECT')"
            ).fetchone() == (True,)
    finally:
        with superuser_connect(private_pg) as conn:
            conn.execute("DROP DATABASE IF EXISTS app_with_roles WITH (FORCE)")
            conn.execute("REVOKE ALL ON DATABASE app FROM report_reader")
            conn.execute("DROP ROLE IF EXISTS report_reader")


ROLE_QUERY = """
    SELECT r.rolcanlogin, r.rolconnlimit, r.rolvaliduntil, r.rolinherit,
           (SELECT setconfig FROM pg_db_role_setting WHERE setrole = r.oid AND setdatabase = 0),
           (SELECT array_agg((m.roleid::regrole::text, m.inherit_option, m.set_option, m.admin_option)::text)
            FROM pg_auth_members m WHERE m.member = r.oid)
    FROM pg_roles r WHERE r.rolname = 'report_reader'
"""


# -- a set of two application databases: SOURCE_DB chooses ---------------------------------------------------


@pytest.fixture(scope="module")
def two_databases_set(pg: NativePostgres, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BACKUP_DIR holding one verified set of `app`, `inventory` (3 rows in stock) and `postgres`; `inventory`
    is dropped from the server right after the backup, so the session server is as it was."""
    backup_dir = tmp_path_factory.mktemp("two-databases")
    with superuser_connect(pg) as conn:
        conn.execute("CREATE DATABASE inventory OWNER app_owner")
    try:
        with psycopg.connect(pg.dsn("app_owner", "inventory"), autocommit=True) as conn:
            conn.execute("CREATE TABLE stock (sku text PRIMARY KEY, units int NOT NULL)")
            conn.execute("INSERT INTO stock VALUES ('a', 1), ('b', 2), ('c', 3)")
        settings = settings_of(backup_env(pg, backup_dir, BACKUP_DATABASES="app,inventory,postgres"))
        take_backup(settings, clock=SystemClock(), cancel=Cancellation())
    finally:
        with superuser_connect(pg) as conn:
            conn.execute("DROP DATABASE IF EXISTS inventory WITH (FORCE)")
    return backup_dir


def test_a_set_of_two_databases_needs_source_db_and_lists_them(
    pg: NativePostgres, make_env: EnvFactory, two_databases_set: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    set_id = only_set(settings_of(make_env(BACKUP_DIR=str(two_databases_set)))).id
    before = databases(pg)
    for source in ([], ["--source-db", ""]):  # make restore passes an empty SOURCE_DB when it is left out
        assert restore(make_env, two_databases_set, *source, "--target-db", target) == ExitCode.USAGE
        error = capsys.readouterr().err
        held = "it holds 2 application databases, app, inventory\n"
        assert f"unable to choose which database of set {set_id} to restore: {held}" in error
        assert f"make restore BACKUP={set_id} SOURCE_DB=app TARGET_DB={target}" in error and USAGE in error
    assert databases(pg) == before


def test_an_unknown_source_db_lists_the_databases_of_the_set(
    pg: NativePostgres, make_env: EnvFactory, two_databases_set: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = databases(pg)
    assert restore(make_env, two_databases_set, "--source-db", "nope", "--target-db", target) == ExitCode.USAGE
    error = capsys.readouterr().err
    assert "unable to restore database 'nope': set " in error and "holds app, inventory, postgres" in error
    assert USAGE in error
    assert databases(pg) == before


def test_source_db_restores_the_database_it_names(
    pg: NativePostgres, make_env: EnvFactory, two_databases_set: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert restore(make_env, two_databases_set, "--source-db", "inventory", "--target-db", target) == ExitCode.OK
    assert "restored inventory of set " in capsys.readouterr().out
    with superuser_connect(pg, target) as conn:
        assert conn.execute("SELECT sku, units FROM stock ORDER BY sku").fetchall() == [("a", 1), ("b", 2), ("c", 3)]
        assert conn.execute("SELECT to_regclass('shop.orders')").fetchone() == (None,)


def test_an_empty_source_db_picks_the_only_application_database(
    pg: NativePostgres, make_env: EnvFactory, shared_set_dir: Path, target: str
) -> None:
    assert restore(make_env, shared_set_dir, "--source-db", "", "--target-db", target) == ExitCode.OK
    with superuser_connect(pg, target) as conn:
        assert conn.execute("SELECT count(*) FROM shop.orders").fetchone() == (2000,)


def test_no_target_is_a_usage_error_before_anything_is_read(
    pg: NativePostgres, make_env: EnvFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """make restore passes an empty TARGET_DB when it is left out; there need not even be a set."""
    before = databases(pg)
    assert restore(make_env, tmp_path / "no-backups", "--target-db", "") == ExitCode.USAGE
    error = capsys.readouterr().err
    assert "unable to restore: no target database given" in error and "TARGET_DB (--target-db)" in error
    assert USAGE in error
    assert databases(pg) == before
