"""The backup sidecar, restore job and restore drill in the Compose stack: the sidecar's own backup,
`backup-now` through it, status and metrics inside the container, the drill in a throwaway container
(passing, and failing on a corrupted set), a scrub finding bit rot through the volume, the restore job, and a
stale state turning the container unhealthy."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import psycopg
from psycopg import sql

from pgbackup.errors import ExitCode
from tests.fixtures.stack import REPO, Stack
from tests.helpers import wait_until

PYTHON = ("python", "-c")


def pgbackup(stack: Stack, *args: str, check: bool = True) -> Any:
    return stack.exec("backup", "python", "-m", "pgbackup", *args, check=check)


def sets(stack: Stack) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(pgbackup(stack, "list", "--json").stdout)["sets"]
    return listed


def live_counts(stack: Stack) -> dict[str, int]:
    with psycopg.connect(stack.dsn()) as conn:
        tables = conn.execute("SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2").fetchall()
        counts = {}
        for schema, table in tables:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchone()
            counts[f"{schema}.{table}"] = row[0] if row else -1
        return counts


def manifest(stack: Stack, set_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stack.exec("backup", "cat", f"/backups/sets/{set_id}/manifest.json").stdout)
    return data


def test_the_sidecar_backed_up_on_start(stack: Stack) -> None:
    listed = sets(stack)
    assert listed, "BACKUP_ON_START=true: the sidecar's first set must exist"
    assert listed[-1]["verified"] == "yes"
    assert set(listed[-1]["databases"]) == {"app", "postgres"}
    status = json.loads(pgbackup(stack, "status").stdout)
    assert status["health"]["healthy"] is True
    assert status["state"]["last_outcome"] == "success"


def test_backup_now_through_the_sidecar_records_exact_counts(stack: Stack) -> None:
    before = {row["id"] for row in sets(stack)}
    result = pgbackup(stack, "backup")
    assert "verified" in result.stdout
    new = [row for row in sets(stack) if row["id"] not in before]
    assert len(new) == 1 and new[0]["verified"] == "yes"
    app = next(database for database in manifest(stack, new[0]["id"])["databases"] if database["name"] == "app")
    assert {f"{table['schema']}.{table['table']}": table["rows"] for table in app["tables"]} == live_counts(stack)
    owner = stack.exec("backup", "stat", "-c", "%u %a", f"/backups/sets/{new[0]['id']}/db-app.dump").stdout.split()
    assert owner == ["999", "640"], "sets are the postgres user's, not world-readable"


def test_status_and_metrics_are_served_inside_the_container(stack: Stack) -> None:
    script = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9187/metrics', timeout=5).read().decode())"
    metrics = stack.exec("backup", *PYTHON, script).stdout.splitlines()
    assert "pgbackup_healthy 1.0" in metrics
    assert any(line.startswith("pgbackup_sets ") and float(line.split()[1]) >= 1 for line in metrics)
    published = stack.container("backup").attrs["HostConfig"]["PortBindings"] or {}
    assert published == {}, "the status port stays on the internal network"


def drill(stack: Stack, *args: str) -> Any:
    return stack.compose(
        "--profile", "drill", "run", "--rm", "-T", "restore-drill", "drill", *args, check=False, timeout=900
    )


def test_restore_drill_passes(stack: Stack) -> None:
    result = drill(stack)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "restore drill of set" in result.stdout and "PASSED" in result.stdout
    assert "RTO " in result.stdout and "RPO " in result.stdout
    reports = stack.exec("backup", "ls", "/backups/drills").stdout.split()
    assert reports, "the drill writes its JSON report onto the backups volume"


FLIP = """
import sys
path = sys.argv[1]
with open(path, 'r+b') as f:
    f.seek(4096)
    byte = f.read(1)
    f.seek(4096)
    f.write(bytes([byte[0] ^ 0x01]))
"""


def test_restore_drill_fails_on_a_corrupted_set(stack: Stack) -> None:
    pgbackup(stack, "backup")
    set_id = sets(stack)[0]["id"]
    archive = f"/backups/sets/{set_id}/db-app.dump"
    stack.exec("backup", "python", "-c", FLIP, archive)
    try:
        result = drill(stack, "--set", set_id)
        assert result.returncode == ExitCode.VERIFY, result.stdout[-3000:] + result.stderr[-3000:]
        assert "FAILED" in result.stdout and "checksums" in result.stdout
    finally:
        stack.exec("backup", "python", "-c", FLIP, archive)
    pgbackup(stack, "verify", "--set", set_id)


def make(stack: Stack, target: str, *variables: str) -> subprocess.CompletedProcess[str]:
    """The real `make <target>` on the test stack (make exits 2 when the command fails)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), target, *variables],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_a_scrub_finds_bit_rot_through_the_volume(stack: Stack) -> None:
    """One byte of the newest set flipped on the backups volume: `make scrub` finds it, `make backups` shows it,
    the sidecar's health check and /metrics say so, and `make restore-drill` takes the older good set instead."""
    pgbackup(stack, "backup")
    pgbackup(stack, "backup")
    newest, older = sets(stack)[0]["id"], sets(stack)[1]["id"]
    archive = f"/backups/sets/{newest}/db-app.dump"
    stack.exec("backup", "python", "-c", FLIP, archive)
    try:
        scrub = make(stack, "scrub")
        assert scrub.returncode == 2, scrub.stdout[-3000:] + scrub.stderr[-3000:]
        assert f"{newest}: FAILED: db-app.dump: sha256" in scrub.stdout and "scrub FAILED" in scrub.stdout
        listing = make(stack, "backups")
        assert listing.returncode == 0, listing.stderr
        row = next(line for line in listing.stdout.splitlines() if line.split()[:1] == [newest])
        assert "FAILED" in row and "scrub" in row
        health = pgbackup(stack, "healthcheck", check=False)
        assert health.returncode == ExitCode.UNHEALTHY and f"set {newest} failed its scrub at" in health.stdout
        script = (
            "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9187/metrics', timeout=5).read().decode())"
        )
        metrics = stack.exec("backup", *PYTHON, script).stdout.splitlines()
        assert "pgbackup_sets_failed 1.0" in metrics and "pgbackup_last_scrub_success 0.0" in metrics
        drilled = make(stack, "restore-drill")
        assert drilled.returncode == 0, drilled.stdout[-3000:] + drilled.stderr[-3000:]
        assert f"latest: took set {older}, the newest good set" in drilled.stdout
        assert f"restore drill of set {older}: PASSED" in drilled.stdout
    finally:
        stack.exec("backup", "python", "-c", FLIP, archive)
    # the bytes are right again: a verify records a passing verdict and the set is good once more
    pgbackup(stack, "verify", "--set", newest)
    assert pgbackup(stack, "healthcheck", check=False).returncode == ExitCode.OK


def test_the_sidecar_itself_can_run_a_drill(stack: Stack) -> None:
    """BACKUP_DRILL_SCHEDULE runs the drill inside the backup container: its user, /tmp and shared memory hold a
    private server (the same code as the scheduled job, started by hand here rather than waiting for a schedule)."""
    result = pgbackup(stack, "drill", check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PASSED" in result.stdout


def test_restore_job_creates_a_new_database_and_refuses_an_existing_one(stack: Stack) -> None:
    target = f"stack_restore_{uuid.uuid4().hex[:8]}"
    run = ("--profile", "restore", "run", "--rm", "-T", "restore", "restore", "--set", "latest", "--target-db", target)
    try:
        first = stack.compose(*run, check=False, timeout=600)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        with psycopg.connect(stack.dsn(database=target)) as conn:
            row = conn.execute("SELECT count(*) FROM shop.orders").fetchone()
        with psycopg.connect(stack.dsn()) as conn:
            assert row == conn.execute("SELECT count(*) FROM shop.orders").fetchone()
        again = stack.compose(*run, check=False, timeout=600)
        assert again.returncode == ExitCode.TARGET_EXISTS, again.stdout[-2000:] + again.stderr[-2000:]
        assert "the database exists" in again.stdout + again.stderr
    finally:
        with psycopg.connect(stack.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target)))


RESTORE_USAGE = "hint: usage: make restore BACKUP=<id|latest> SOURCE_DB=<db> TARGET_DB=<new-name> [FORCE=1]"


def make_restore(stack: Stack, *variables: str) -> subprocess.CompletedProcess[str]:
    """The real `make restore VARIABLE=value...` on the test stack; make exits 2 on any failure and names the
    command's own status (`Error 12`)."""
    return make(stack, "restore", *variables)


def test_make_restore_chooses_the_source_of_a_set_of_two_databases(stack: Stack) -> None:
    """A set holding `app` and `inventory`: without SOURCE_DB, or with one it does not hold, make restore lists
    them and shows its form; every other wrong argument shows it too; SOURCE_DB=inventory restores that one."""
    target = f"stack_inventory_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE inventory OWNER app_owner")
    set_id = None
    try:
        with psycopg.connect(stack.dsn("app_owner", "inventory"), autocommit=True) as conn:
            conn.execute("CREATE TABLE stock (sku text PRIMARY KEY, units int NOT NULL)")
            conn.execute("INSERT INTO stock VALUES ('a', 1), ('b', 2)")
        before = {row["id"] for row in sets(stack)}
        pgbackup(stack, "backup")
        [set_id] = [row["id"] for row in sets(stack) if row["id"] not in before]

        refused = {
            "no SOURCE_DB": (
                [f"BACKUP={set_id}", f"TARGET_DB={target}"],
                2,
                [
                    f"set {set_id} to restore: it holds 2 application databases, app, inventory",
                    f"make restore BACKUP={set_id} SOURCE_DB=app TARGET_DB={target}",
                ],
            ),
            "unknown SOURCE_DB": (
                [f"BACKUP={set_id}", "SOURCE_DB=nope", f"TARGET_DB={target}"],
                2,
                [f"unable to restore database 'nope': set {set_id} holds app, inventory, postgres"],
            ),
            "no TARGET_DB": ([f"BACKUP={set_id}", "SOURCE_DB=inventory"], 2, ["no target database given"]),
            "unknown BACKUP": (
                ["BACKUP=20000101T000000Z", "SOURCE_DB=inventory", f"TARGET_DB={target}"],
                12,
                ["unable to find backup set '20000101T000000Z'"],
            ),
        }
        for what, (variables, status, lines) in refused.items():
            result = make_restore(stack, *variables)
            output = result.stdout + result.stderr
            assert result.returncode == 2 and f"Error {status}" in result.stderr, f"{what}:\n{output[-3000:]}"
            for line in [*lines, RESTORE_USAGE]:
                assert line in output, f"{what}: {line!r} missing from\n{output[-3000:]}"
        with psycopg.connect(stack.dsn()) as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (target,)).fetchone() == (0,)

        restored = make_restore(stack, f"BACKUP={set_id}", "SOURCE_DB=inventory", f"TARGET_DB={target}")
        assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
        assert f"restored inventory of set {set_id} into {target}: 1 tables, 2 rows" in restored.stdout
        with psycopg.connect(stack.dsn(database=target)) as conn:
            assert conn.execute("SELECT sku, units FROM stock ORDER BY sku").fetchall() == [("a", 1), ("b", 2)]

        again = make_restore(stack, f"BACKUP={set_id}", "SOURCE_DB=inventory", f"TARGET_DB={target}")
        output = again.stdout + again.stderr
        assert again.returncode == 2 and "Error 13" in again.stderr, output[-3000:]
        assert f"unable to restore into {target}: the database exists" in output and RESTORE_USAGE in output
    finally:
        with psycopg.connect(stack.dsn(), autocommit=True) as conn:
            for database in (target, "inventory"):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        if set_id is not None:  # the shared stack's sets hold one application database again
            stack.exec("backup", "rm", "-rf", f"/backups/sets/{set_id}")


AGE_SETS = """
import datetime, json, pathlib
old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=3)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
for path in pathlib.Path('/backups/sets').glob('*/manifest.json'):
    data = json.loads(path.read_text())
    data['started_at'] = data['finished_at'] = old
    for database in data['databases']:
        database['snapshot_at'] = old
    path.write_text(json.dumps(data))
"""


def health(stack: Stack) -> str:
    return str(stack.container("backup").attrs["State"]["Health"]["Status"])


def test_stale_state_makes_the_container_unhealthy(fresh_stack: Stack) -> None:
    """Freshness, not liveness: the process runs throughout, yet old sets make it unhealthy."""
    assert health(fresh_stack) == "healthy"
    fresh_stack.exec("backup", "python", "-c", AGE_SETS)
    wait_until(
        lambda: health(fresh_stack) == "unhealthy",
        timeout=240,
        interval=2,
        what="backup to turn unhealthy",
        describe=lambda: health(fresh_stack),
    )
    assert fresh_stack.container("backup").attrs["State"]["Status"] == "running"
    pgbackup(fresh_stack, "backup")
    # wait-healthy.sh gives up on an unhealthy service; here unhealthy is the state we wait to leave
    wait_until(
        lambda: health(fresh_stack) == "healthy",
        timeout=240,
        interval=2,
        what="backup to be healthy again",
        describe=lambda: health(fresh_stack),
    )
