"""`make bench-backup`: pgbackup's backup and restore against plain `pg_dump -Fc` / `pg_restore` on the
demo database at 1M orders, in the same run, on a private native PostgreSQL 18; plus one restore drill.

Each round times, in alternating order, a plain dump and a pgbackup backup (lock, free-space check,
snapshot-consistent counts, fsync, sha256, verification, state), then a plain restore and a pgbackup
restore (checksums re-read, archive listed, staging database, exact row counts, rename), both with the
same number of pg_restore jobs. Medians are compared; the run fails (exit 1) when pgbackup's overhead
over the plain tools is above --max-overhead percent. The report goes to reports/bench-backup.json.
This is a benchmark, not a test: it is never part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from devtools.backup_env import backup_environment
from devtools.native_pg import BIN_DIR, NativePostgres
from devtools.paths import REPO
from pgbackup.cancel import Cancellation
from pgbackup.clock import SystemClock
from pgbackup.config import Settings
from pgbackup.drill import run_drill
from pgbackup.restore import restore_set
from pgbackup.runner import BackupRunner

RESTORE_JOBS = 2


def timed(work: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = work()
    return time.perf_counter() - began, result


def drop(server: NativePostgres, *names: str) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings_for(server: NativePostgres, backup_dir: Path, role: str) -> Settings:
    env = backup_environment(server, backup_dir, role, BACKUP_RESTORE_JOBS=str(RESTORE_JOBS), BACKUP_KEEP_LAST="1")
    return Settings.from_env(env)


def plain_dump(server: NativePostgres, path: Path) -> int:
    subprocess.run(
        [str(BIN_DIR / "pg_dump"), "--format=custom", f"--file={path}", "--no-password"],
        env=server.env("backup_operator"),
        check=True,
    )
    return path.stat().st_size


def plain_restore(server: NativePostgres, path: Path, target: str) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{target}" TEMPLATE template0')
    env = dict(server.env("postgres"), PGDATABASE=target)
    subprocess.run(
        [
            str(BIN_DIR / "pg_restore"),
            "--exit-on-error",
            "--no-password",
            f"--jobs={RESTORE_JOBS}",
            f"--dbname={target}",
            str(path),
        ],
        env=env,
        check=True,
    )


def run(orders: int, rounds: int, max_overhead: float, report_path: Path) -> int:
    clock = SystemClock()
    print(f"bench-backup: starting a native PostgreSQL 18 with {orders} demo orders", flush=True)
    setup_seconds, server = timed(NativePostgres(demo_orders=orders).start)
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    samples: dict[str, list[float]] = {
        "plain_dump": [],
        "pgbackup_backup": [],
        "plain_restore": [],
        "pgbackup_restore": [],
    }
    sizes: dict[str, int] = {}
    try:
        backup_dir = work / "backups"
        backup_settings = settings_for(server, backup_dir, "backup_operator")
        restore_settings = settings_for(server, backup_dir, "postgres")
        plain_file = work / "plain.dump"

        def ours() -> None:
            seconds, backup_set = timed(BackupRunner(backup_settings, clock, Cancellation()).run_once)
            samples["pgbackup_backup"].append(seconds)
            sizes["pgbackup_set"] = backup_set.manifest.bytes
            sizes["pgbackup_app_dump"] = next(
                entry.bytes for entry in backup_set.manifest.files if entry.name == "db-app.dump"
            )

        def plain() -> None:
            plain_file.unlink(missing_ok=True)
            seconds, size = timed(lambda: plain_dump(server, plain_file))
            samples["plain_dump"].append(seconds)
            sizes["plain_dump"] = size

        def plain_restored() -> None:
            samples["plain_restore"].append(timed(lambda: plain_restore(server, plain_file, "bench_plain"))[0])

        def ours_restored() -> None:
            seconds, _ = timed(
                lambda: restore_set(
                    restore_settings,
                    selector="latest",
                    target_db="bench_ours",
                    source_db="app",
                    force=False,
                    clock=clock,
                )
            )
            samples["pgbackup_restore"].append(seconds)

        for number in range(rounds):
            for step in (plain, ours) if number % 2 == 0 else (ours, plain):
                step()
            drop(server, "bench_plain", "bench_ours")
            for step in (plain_restored, ours_restored) if number % 2 == 0 else (ours_restored, plain_restored):
                step()
            drop(server, "bench_plain", "bench_ours")
            latest = ", ".join(f"{key} {values[-1]:.2f} s" for key, values in samples.items())
            print(f"  round {number + 1}/{rounds}: {latest}", flush=True)
        drill = run_drill(
            backup_settings, selector="latest", report_path=work / "drill.json", max_rto=3600, max_rpo=3600, clock=clock
        )
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    medians = {key: statistics.median(values) for key, values in samples.items()}
    backup_overhead = (medians["pgbackup_backup"] / medians["plain_dump"] - 1) * 100
    restore_overhead = (medians["pgbackup_restore"] / medians["plain_restore"] - 1) * 100
    report = {
        "orders": orders,
        "rounds": rounds,
        "restore_jobs": RESTORE_JOBS,
        "setup_seconds": round(setup_seconds, 1),
        "samples_seconds": {key: [round(value, 3) for value in values] for key, values in samples.items()},
        "median_seconds": {key: round(value, 3) for key, value in medians.items()},
        "bytes": sizes,
        "backup_overhead_percent": round(backup_overhead, 1),
        "restore_overhead_percent": round(restore_overhead, 1),
        "max_overhead_percent": max_overhead,
        "drill": {"passed": drill.passed, "rto_seconds": drill.rto_seconds, "rpo_seconds": drill.rpo_seconds},
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    failed = [
        f"{name} overhead {value:.1f}% > {max_overhead:g}%"
        for name, value in (("backup", backup_overhead), ("restore", restore_overhead))
        if value > max_overhead
    ]
    if not drill.passed:
        failed.append("the drill failed")
    if failed:
        print("bench-backup: FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    print(f"bench-backup: passed (report: {report_path})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_backup", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="demo orders (default 1000000)")
    parser.add_argument("--rounds", type=int, default=5, help="measurements of each kind; medians compared (default 5)")
    parser.add_argument("--max-overhead", type=float, default=10.0, help="allowed overhead in percent (default 10)")
    parser.add_argument("--report", type=Path, default=REPO / "reports" / "bench-backup.json", help="JSON report path")
    args = parser.parse_args(argv)
    return run(args.orders, args.rounds, args.max_overhead, args.report)


if __name__ == "__main__":
    sys.exit(main())
