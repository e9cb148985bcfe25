"""The restore drill: prove that a set restores, with numbers.

On a private, throwaway server (sandbox.py): verify every checksum and archive listing, apply the
globals, check every role against the manifest, restore every database with the same code as the
restore job, compare exact per-table row counts and object counts, check that every index is valid and
every view plans, then measure RTO (drill start to verified) and RPO (now minus the set's snapshot).
The server's data goes to memory or to disk-backed scratch space by the set's estimated size (scratch.py), and the
report says which. The report is written as JSON (the newest `drills.REPORTS_KEPT` are kept) and the server is always
torn down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgbackup.cancel import Cancellation
from pgbackup.catalog import LATEST, BackupSet, scan
from pgbackup.clock import Clock, to_iso
from pgbackup.config import Settings
from pgbackup.db import Connection, count_objects, read_roles, scalar
from pgbackup.drills import prune_reports
from pgbackup.errors import AbortedError, BackupError
from pgbackup.files import shared_lock, write_json_atomic
from pgbackup.manifest import GLOBALS_NAME, MANIFEST_NAME, Database, Role, Verdict, Verification
from pgbackup.pgtools import find_tool, run_tool
from pgbackup.restore import compare_counts, create_database, drop_database, restore_archive
from pgbackup.sandbox import PrivateServer
from pgbackup.scratch import choose_scratch, human_bytes
from pgbackup.state import State, update_state
from pgbackup.verify import check_archives, check_checksums
from pgbackup.webhook import notify_failure

logger = logging.getLogger(__name__)

MAINTENANCE_DB = "template1"


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    @property
    def first_line(self) -> str:
        return (self.detail.splitlines() or [""])[0]


def failures_text(report: DrillReport) -> str:
    """`check: first line of its detail; ...` for every failed check (empty when none failed)."""
    return "; ".join(f"{check.name}: {check.first_line}" for check in report.checks if not check.ok)


@dataclass(slots=True)
class DrillReport:
    set_id: str
    started_at: datetime
    snapshot_at: datetime
    max_rto_seconds: float
    max_rpo_seconds: float
    finished_at: datetime | None = None
    verified: bool = False
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    checks: list[Check] = field(default_factory=list)
    databases: list[dict[str, Any]] = field(default_factory=list)
    report_path: str | None = None
    passed_over: str | None = None  # `latest` skipped newer sets: which, and why
    scheduled: bool = False  # run by the sidecar's BACKUP_DRILL_SCHEDULE, not by hand
    scratch: dict[str, Any] | None = None  # memory or disk, where, and why (scratch.Scratch.to_dict)

    @property
    def within_thresholds(self) -> bool:
        return (
            self.rto_seconds is not None
            and self.rpo_seconds is not None
            and self.rto_seconds <= self.max_rto_seconds
            and self.rpo_seconds <= self.max_rpo_seconds
        )

    @property
    def passed(self) -> bool:
        return self.verified and self.within_thresholds

    def record(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        (logger.info if ok else logger.error)("drill check=%r ok=%s detail=%s", name, ok, detail)
        return ok

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("started_at", "snapshot_at", "finished_at"):
            value = getattr(self, name)
            data[name] = None if value is None else to_iso(value)
        data["passed"] = self.passed
        data["within_thresholds"] = self.within_thresholds
        return data


def run_drill(
    settings: Settings,
    *,
    selector: str,
    report_path: Path | None,
    max_rto: float,
    max_rpo: float,
    clock: Clock,
    cancel: Cancellation | None = None,
    scheduled: bool = False,
) -> DrillReport:
    """Run the drill on one set, record its verdict on the set and write its report; never raises for a failed
    check (see `passed`)."""
    began = clock.monotonic()
    started_at = clock.now()
    catalog = scan(settings.sets_dir)
    backup_set = catalog.resolve(selector)
    report = DrillReport(backup_set.id, started_at, backup_set.snapshot_at, max_rto, max_rpo, scheduled=scheduled)
    report.passed_over = catalog.passed_over(backup_set) if selector == LATEST else None
    if report.passed_over:
        logger.warning("drill %s", report.passed_over)
    logger.info("drill started set=%s", backup_set.id)
    with shared_lock(backup_set.path / MANIFEST_NAME):
        report.verified = _drill(settings, backup_set, report, cancel, lambda: _measure(report, clock, began))
        _record_verdict(backup_set, report, clock)
    if report.verified and report.rto_seconds is not None and report.rpo_seconds is not None:
        report.record("RTO", report.rto_seconds <= max_rto, f"{report.rto_seconds:.1f} s (limit {max_rto:g} s)")
        report.record("RPO", report.rpo_seconds <= max_rpo, f"{report.rpo_seconds:.1f} s (limit {max_rpo:g} s)")
    report.finished_at = clock.now()
    path = report_path or settings.drills_dir / f"{started_at:%Y%m%dT%H%M%SZ}-{backup_set.id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report.report_path = str(path)
    write_json_atomic(path, report.to_dict())
    if report_path is None:
        prune_reports(settings.drills_dir)
    logger.info("drill finished set=%s passed=%s report=%s", backup_set.id, report.passed, path)
    return report


ENVIRONMENT_CHECKS = frozenset({"scratch", "private server"})
"""Checks whose failure says nothing about the set (no room for it, the drill's own server did not start): no verdict
then."""


def _record_verdict(backup_set: BackupSet, report: DrillReport, clock: Clock) -> None:
    """The drill's verdict on the set (restored and verified, or which check failed) goes into its record, so a
    set that does not restore stops being "verified". RTO and RPO judge the operation, not the set."""
    failures = [check for check in report.checks if not check.ok]
    if failures and all(check.name in ENVIRONMENT_CHECKS for check in failures):
        logger.warning("drill could not run set=%s: no verdict recorded on the set", backup_set.id)
        return
    error = failures_text(report) or None
    verdict = Verdict("drill", report.verified, clock.now(), tuple(check.name for check in report.checks), error)
    Verification.record(backup_set.path, verdict)


def _measure(report: DrillReport, clock: Clock, began: float) -> None:
    """RTO and RPO at the moment the restored data is verified (before the server is torn down)."""
    report.rto_seconds = round(clock.monotonic() - began, 3)
    report.rpo_seconds = round((clock.now() - report.snapshot_at).total_seconds(), 3)


def _drill(
    settings: Settings,
    backup_set: BackupSet,
    report: DrillReport,
    cancel: Cancellation | None,
    verified: Callable[[], None],
) -> bool:
    manifest = backup_set.manifest
    problems = check_checksums(backup_set.path, manifest)
    if not report.record(
        "checksums", not problems, "; ".join(problems) or f"{len(manifest.files)} files, {manifest.bytes} bytes"
    ):
        return False
    problems = check_archives(backup_set.path, manifest, bin_dir=settings.pg_bin_dir, cancel=cancel)
    if not report.record("archives list", not problems, "; ".join(problems) or f"{len(manifest.databases)} archives"):
        return False
    try:
        scratch = choose_scratch(settings, manifest)
    except BackupError as exc:
        return report.record("scratch", False, str(exc))
    report.scratch = scratch.to_dict()
    report.record("scratch", True, f"{scratch.kind} ({scratch.directory}): {scratch.reason}")
    server = PrivateServer(
        bin_dir=settings.pg_bin_dir,
        work_dir=scratch.directory,
        run_as=settings.drill_user,
        superuser=manifest.bootstrap_superuser,
    )
    try:
        with server:
            report.record("private server", True, f"socket {server.socket_dir}")
            ok = _restore_all(settings, backup_set, server, report, cancel)
            if ok:
                verified()
            return ok
    except Exception as exc:  # any failure is the drill's verdict, written to the report
        if cancel is not None:
            cancel.check()
        tail = server.log_tail() if server.root is not None else ""
        return report.record("private server", False, f"{exc}\n{tail}".strip())


def _restore_all(
    settings: Settings, backup_set: BackupSet, server: PrivateServer, report: DrillReport, cancel: Cancellation | None
) -> bool:
    manifest = backup_set.manifest
    problems = apply_globals(settings, backup_set, server, cancel)
    if not report.record("globals", not problems, "; ".join(problems) or GLOBALS_NAME):
        return False
    with server.connect(MAINTENANCE_DB) as conn:
        problems = compare_roles(manifest.roles, read_roles(conn))
        if not report.record("roles", not problems, "; ".join(problems) or f"{len(manifest.roles)} roles match"):
            return False
        drop_database(conn, "postgres")  # recreated below from the set, like every other database
        for database in manifest.databases:
            if not _restore_one(settings, backup_set, database, conn, server, report, cancel):
                return False
    return True


def _restore_one(
    settings: Settings,
    backup_set: BackupSet,
    database: Database,
    conn: Connection,
    server: PrivateServer,
    report: DrillReport,
    cancel: Cancellation | None,
) -> bool:
    try:
        create_database(conn, database.name, database)
        restore_archive(
            backup_set.path / database.file,
            conninfo=make_conninfo(dbname=database.name),
            env=server.env(database.name),
            bin_dir=settings.pg_bin_dir,
            jobs=settings.restore_jobs,
            cancel=cancel,
            what=f"restore database {database.name}",
        )
    except BackupError as exc:
        if cancel is not None:
            cancel.check()
        return report.record(f"restore {database.name}", False, str(exc))
    problems, rows = compare_counts(lambda: server.connect(database.name), database, jobs=settings.restore_jobs)
    with server.connect(database.name) as restored:
        report.databases.append({"name": database.name, "tables": len(database.tables), "rows": rows})
        if not report.record(
            f"row counts {database.name}",
            not problems,
            "; ".join(problems) or f"{len(database.tables)} tables, {rows} rows",
        ):
            return False
        problems = sanity_problems(restored, database)
        return report.record(
            f"sanity {database.name}", not problems, "; ".join(problems) or "objects, indexes and views"
        )


def apply_globals(
    settings: Settings, backup_set: BackupSet, server: PrivateServer, cancel: Cancellation | None
) -> list[str]:
    """Run globals.sql with psql as pg_dumpall intends: the one expected error is that the bootstrap
    superuser already exists (pg_dumpall writes CREATE ROLE for every role, then ALTER ROLE). Any other
    error is a problem."""
    psql = str(find_tool("psql", settings.pg_bin_dir))
    result = run_tool(
        [psql, "--no-psqlrc", "--quiet", "--no-password", "--file", str(backup_set.path / GLOBALS_NAME)],
        env=server.env(MAINTENANCE_DB),
        what="apply the globals (roles) of the set",
        cancel=cancel,
    )
    expected = f'ERROR:  role "{server.superuser}" already exists'
    return [line for line in result.stderr.splitlines() if "ERROR:" in line and not line.endswith(expected)]


def compare_roles(expected: tuple[Role, ...], actual: tuple[Role, ...]) -> list[str]:
    """Differences between the manifest's roles and the restored server's."""
    restored = {role.name: role for role in actual}
    wanted = {role.name: role for role in expected}
    problems = [f"role {name} missing" for name in sorted(wanted.keys() - restored.keys())]
    problems += [f"role {name} not in the manifest" for name in sorted(restored.keys() - wanted.keys())]
    for name in sorted(wanted.keys() & restored.keys()):
        if wanted[name] != restored[name]:
            differing = [
                item.name
                for item in fields(Role)
                if getattr(wanted[name], item.name) != getattr(restored[name], item.name)
            ]
            problems.append(f"role {name} differs in {', '.join(differing)}")
    return problems


def sanity_problems(conn: Connection, database: Database) -> list[str]:
    """Catalog checks on a restored database: same objects, every index valid, every view plans."""
    problems = []
    objects = count_objects(conn)
    if database.objects and objects != database.objects:
        problems.append(f"objects {objects} restored, {database.objects} in the manifest")
    invalid = scalar(conn, "SELECT count(*) FROM pg_index WHERE NOT indisvalid OR NOT indisready")
    if invalid:
        problems.append(f"{invalid} invalid indexes")
    views = conn.execute(
        """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY 1, 2
        """
    ).fetchall()
    for schema, view in views:
        try:
            conn.execute(sql.SQL("EXPLAIN SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(view)))
        except Exception as exc:
            problems.append(f"view {schema}.{view} does not plan: {exc}")
    return problems


def summary(report: DrillReport) -> str:
    """The human-readable summary printed at the end of `drill`."""
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [f"latest: {report.passed_over}"] if report.passed_over else []
    lines.append(f"restore drill of set {report.set_id}: {verdict}")
    for check in report.checks:
        lines.append(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name:<28} {check.first_line}")
    if report.rto_seconds is not None and report.rpo_seconds is not None:
        lines.append(
            f"  RTO {report.rto_seconds:.1f} s (limit {report.max_rto_seconds:g} s), "
            f"RPO {report.rpo_seconds:.1f} s (limit {report.max_rpo_seconds:g} s)"
        )
    if report.scratch is not None:
        lines.append(
            f"  scratch: {report.scratch['kind']} ({report.scratch['directory']}), estimated "
            f"{human_bytes(report.scratch['estimated_bytes'])}, memory budget "
            f"{human_bytes(report.scratch['memory_budget_bytes'])}"
        )
    lines.append(f"  report: {report.report_path}")
    return "\n".join(lines)


def scheduled_drill(settings: Settings, *, clock: Clock, cancel: Cancellation) -> bool:
    """The sidecar's BACKUP_DRILL_SCHEDULE job: drill the newest good set with the configured thresholds, record the
    outcome in the state file (health, /metrics) and post the webhook when it failed. Raises only AbortedError."""
    try:
        report = run_drill(
            settings,
            selector=LATEST,
            report_path=None,
            max_rto=settings.drill_max_rto,
            max_rpo=settings.drill_max_rpo,
            clock=clock,
            cancel=cancel,
            scheduled=True,
        )
        error = None if report.passed else failures_text(report) or "failed"
        set_id: str | None = report.set_id
    except AbortedError:
        raise
    except BackupError as exc:  # e.g. no good set to drill
        error, set_id = exc.message, None
    except Exception as exc:  # the loop must survive anything a drill does
        error, set_id = f"{type(exc).__name__}: {exc}", None
    now = clock.now()

    def record(state: State) -> None:
        state.last_drill_at = now
        state.last_drill_outcome = "success" if error is None else "failure"
        state.last_drill_error = error
        state.drills_total += 1
        state.drill_failures_total += 0 if error is None else 1

    try:
        update_state(settings.state_file, clock, record)
    except OSError as exc:
        logger.error("unable to record the drill in %s: %s", settings.state_file, exc)
    if error is not None:
        logger.error("scheduled drill failed set=%s: %s", set_id, error)
        notify_failure(settings, {"event": "drill_failed", "at": to_iso(now), "set_id": set_id, "error": error})
    return error is None
