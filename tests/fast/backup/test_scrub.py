"""Backups that stay proven: scrubs find bit rot in retained sets, a set's verdict follows its latest check, and
`latest`, health, metrics and retention go by the newest *good* set; scheduled drills pass, or make the sidecar
unhealthy and post the webhook. Every corruption here is done on disk to a real set taken from the session server."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from pgbackup.__main__ import main
from pgbackup.cancel import Cancellation
from pgbackup.catalog import scan
from pgbackup.clock import SystemClock
from pgbackup.errors import ExitCode
from pgbackup.files import free_bytes, sha256_file
from pgbackup.health import assess
from pgbackup.loop import BackupLoop
from pgbackup.manifest import VERIFICATION_NAME, Verification
from pgbackup.scrub import ReadRate, scrub
from pgbackup.state import read_state
from pgbackup.status import StatusCollector
from tests.fast.backup.helpers import EnvFactory, FakeClock, WebhookReceiver, settings_of


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def two_sets(make_env: EnvFactory, set_copy: Path, **overrides: str) -> tuple[dict[str, str], str, str]:
    """The shared set plus a newer one taken now: (env, older id, newer id)."""
    env = make_env(BACKUP_DIR=str(set_copy), **overrides)
    assert main(["backup", "--skip-checks"], environ=env) == ExitCode.OK
    sets = scan(settings_of(env).sets_dir).sets
    assert len(sets) == 2
    return env, sets[0].id, sets[1].id


def health_of(env: dict[str, str], clock: object = None) -> tuple[bool, list[str]]:
    settings = settings_of(env)
    health = assess(
        settings,
        scan(settings.sets_dir),
        read_state(settings.state_file),
        free_bytes(settings.backup_dir),
        clock or SystemClock(),  # type: ignore[arg-type]
    )
    return health.healthy, list(health.reasons)


def metrics_of(env: dict[str, str]) -> str:
    registry = CollectorRegistry()
    registry.register(StatusCollector(settings_of(env), SystemClock(), lambda: False))
    return generate_latest(registry).decode()


def metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"{name} ")]
    assert len(values) == 1, f"{name} not in the metrics"
    return values[0]


def test_bit_rot_in_the_newest_set_is_found_shown_and_passed_over(
    make_env: EnvFactory,
    set_copy: Path,
    webhook: WebhookReceiver,
    superuser: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    env, older, newer = two_sets(make_env, set_copy, BACKUP_WEBHOOK_URL=webhook.url)
    assert health_of(env)[0]
    flip_byte(set_copy / "sets" / newer / "db-app.dump")
    capsys.readouterr()

    assert main(["scrub"], environ=env) == ExitCode.VERIFY
    out = capsys.readouterr().out
    assert f"{older}: ok" in out and f"{newer}: FAILED: db-app.dump: sha256" in out and "scrub FAILED" in out

    # the verdict is on the set, in its history after the backup's own
    record = json.loads((set_copy / "sets" / newer / VERIFICATION_NAME).read_text())
    assert [entry["kind"] for entry in record["history"]] == ["backup", "scrub"]
    assert record["ok"] is False and record["history"][-1]["ok"] is False

    # make backups shows it, with the check and what it found
    assert main(["list"], environ=env) == ExitCode.OK
    listing = capsys.readouterr().out
    rows = {line.split()[0]: line for line in listing.splitlines() if line.strip()}
    newer_row = rows[newer]
    assert "FAILED" in newer_row and "scrub" in newer_row
    assert "scrub at " in listing and "db-app.dump: sha256" in listing
    assert " yes " in rows[older]

    # health names it; the metrics count it; the webhook heard of it
    healthy, reasons = health_of(env)
    assert not healthy and any(f"set {newer} failed its scrub at " in reason for reason in reasons)
    text = metrics_of(env)
    assert metric(text, "pgbackup_sets_failed") == 1 and metric(text, "pgbackup_last_scrub_success") == 0
    assert metric(text, "pgbackup_healthy") == 0 and metric(text, "pgbackup_scrub_failures_total") == 1
    status = json.loads(_status_json(env))
    assert status["health"]["newest_verified"] == older and status["sets"]["failed"][0]["id"] == newer
    assert [event["event"] for event in webhook.events] == ["scrub_failed"]
    assert webhook.events[0]["failed_sets"] == [newer]

    # latest is the newest good set, and restore and the drill say which they took instead, and why
    target = "scrub_restored"
    superuser.execute(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)")
    restore_env = make_env("postgres", BACKUP_DIR=str(set_copy))
    try:
        code = main(["restore", "--set", "latest", "--source-db", "app", "--target-db", target], environ=restore_env)
    finally:
        superuser.execute(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)")
    assert code == ExitCode.OK
    out = capsys.readouterr().out
    assert f"latest: took set {older}, the newest good set, instead of newer ones: {newer} failed its scrub" in out
    assert f"of set {older} into {target}" in out
    code = main(["drill", "--report", str(set_copy / "drill.json")], environ=env)
    out = capsys.readouterr().out
    assert code == ExitCode.OK and f"latest: took set {older}" in out and f"restore drill of set {older}: PASSED" in out


def test_the_next_good_backup_replaces_a_failed_set_and_health_recovers(make_env: EnvFactory, set_copy: Path) -> None:
    env, older, newer = two_sets(make_env, set_copy, BACKUP_KEEP_LAST="2")
    flip_byte(set_copy / "sets" / newer / "db-app.dump")
    assert main(["scrub"], environ=env) == ExitCode.VERIFY
    assert not health_of(env)[0]
    # the next backup's prune re-checks the failed set (it fails again) and deletes it; the good one stays
    assert main(["backup", "--skip-checks"], environ=env) == ExitCode.OK
    ids = [backup_set.id for backup_set in scan(settings_of(env).sets_dir).sets]
    assert newer not in ids and older in ids and len(ids) == 2
    assert health_of(env) == (True, [])
    assert newer in (read_state(settings_of(env).state_file) or pytest.fail("no state")).last_pruned


def test_a_failed_set_that_passes_its_recheck_is_kept(make_env: EnvFactory, set_copy: Path) -> None:
    """A failed check that does not hold (a transient read error) never costs a good set: retention re-checks."""
    env, older, newer = two_sets(make_env, set_copy)
    archive = set_copy / "sets" / newer / "db-app.dump"
    pristine = archive.read_bytes()
    flip_byte(archive)
    assert main(["scrub"], environ=env) == ExitCode.VERIFY
    archive.write_bytes(pristine)  # the disk gives the right bytes again
    # keep_last=1 counts only good sets: the older one; the plan drops the failed newer one, whose re-check passes
    assert main(["prune"], environ={**env, "BACKUP_KEEP_LAST": "1"}) == ExitCode.OK
    kept = scan(settings_of(env).sets_dir)
    assert [backup_set.id for backup_set in kept.sets] == [older, newer]
    verification = kept.sets[1].verification
    assert verification is not None and verification.ok
    assert [verdict.kind for verdict in verification.history] == ["backup", "scrub", "recheck"]


def _status_json(env: dict[str, str]) -> str:
    from pgbackup.status import build_status

    return json.dumps(build_status(settings_of(env), SystemClock()))


@pytest.mark.parametrize("damage", ["missing", "truncated", "manifest"])
def test_a_scrub_catches_every_kind_of_damage(
    make_env: EnvFactory, set_copy: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env(BACKUP_DIR=str(set_copy))
    (backup_set,) = scan(settings_of(env).sets_dir).sets
    if damage == "missing":
        (backup_set.path / "globals.sql").unlink()
    elif damage == "truncated":
        archive = backup_set.path / "db-app.dump"
        archive.write_bytes(archive.read_bytes()[:-100])
    else:
        manifest = backup_set.path / "manifest.json"
        manifest.write_text(manifest.read_text()[:-40])
    capsys.readouterr()
    assert main(["scrub"], environ=env) == ExitCode.VERIFY
    out = capsys.readouterr().out
    expected = {
        "missing": f"{backup_set.id}: FAILED: globals.sql: missing",
        "truncated": f"{backup_set.id}: FAILED: db-app.dump: ",
        "manifest": f"{backup_set.id}: DAMAGED: manifest unreadable",
    }[damage]
    assert expected in out
    healthy, reasons = health_of(env)
    assert not healthy
    assert any(backup_set.id in reason for reason in reasons)
    state = read_state(settings_of(env).state_file)
    assert state is not None and state.last_scrub_outcome == "failure" and state.last_scrub_problems


def test_a_good_set_passes_its_scrub_and_stays_good(make_env: EnvFactory, set_copy: Path) -> None:
    env = make_env(BACKUP_DIR=str(set_copy))
    assert main(["scrub"], environ=env) == ExitCode.OK
    (backup_set,) = scan(settings_of(env).sets_dir).sets
    assert backup_set.verified and backup_set.verification is not None
    assert [verdict.kind for verdict in backup_set.verification.history] == ["backup", "scrub"]
    text = metrics_of(env)
    assert metric(text, "pgbackup_last_scrub_success") == 1 and metric(text, "pgbackup_sets_failed") == 0
    assert metric(text, "pgbackup_last_scrub_bytes") == backup_set.manifest.bytes


def test_a_scrub_stays_under_its_read_rate(make_env: EnvFactory, set_copy: Path) -> None:
    """Bytes over time: whatever the machine's speed, a scrub reading at 1 MiB/s cannot finish sooner than its
    bytes allow. A 3 MiB file is added to the set (and to a re-written manifest) so that the limit shows."""
    env = make_env(BACKUP_DIR=str(set_copy), BACKUP_SCRUB_RATE="1MiB")
    (backup_set,) = scan(settings_of(env).sets_dir).sets
    padding = backup_set.path / "padding.bin"
    padding.write_bytes(bytes(3 * 1024 * 1024))
    manifest = json.loads((backup_set.path / "manifest.json").read_text())
    manifest["files"].append({"name": padding.name, "bytes": padding.stat().st_size, "sha256": sha256_file(padding)})
    (backup_set.path / "manifest.json").write_text(json.dumps(manifest))
    started = time.monotonic()
    result = scrub(settings_of(env), clock=SystemClock(), cancel=Cancellation())
    elapsed = time.monotonic() - started
    assert result.ok and result.bytes_read > 3 * 1024 * 1024
    assert result.bytes_read / elapsed <= 1024 * 1024 * 1.02, f"{result.bytes_read} bytes in {elapsed:.2f} s"


def test_the_read_rate_sleeps_exactly_what_keeps_it_under_the_limit() -> None:
    clock = FakeClock.__new__(FakeClock)
    clock.ticks = 100.0
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.ticks += seconds

    rate = ReadRate(1000, wait=wait, monotonic=clock.monotonic)
    for _ in range(4):
        rate(500)  # 2,000 bytes at 1,000 bytes/s: 2 s in all, however fast the reads were
    clock.ticks += 5.0  # a slow read afterwards owes nothing
    rate(500)
    assert waits == [0.5, 0.5, 0.5, 0.5] and rate.total == 2500


def test_the_loop_installs_the_scrub_by_default_and_the_drill_only_when_asked(make_env: EnvFactory) -> None:
    default = BackupLoop(settings_of(make_env()), clock=SystemClock(), cancel=Cancellation())
    assert default.scrub_job is not None and default.drill_job is None
    assert default.scrub_job.at_time is not None  # daily at 04:30
    asked = BackupLoop(
        settings_of(make_env(BACKUP_SCRUB_SCHEDULE="off", BACKUP_DRILL_SCHEDULE="every 6 hours")),
        clock=SystemClock(),
        cancel=Cancellation(),
    )
    assert asked.scrub_job is None and asked.drill_job is not None and asked.drill_job.interval == 6


def test_a_scheduled_drill_passes_and_updates_the_metrics(make_env: EnvFactory, set_copy: Path) -> None:
    env = make_env(BACKUP_DIR=str(set_copy), BACKUP_DRILL_SCHEDULE="every 6 hours")
    loop = BackupLoop(settings_of(env), clock=SystemClock(), cancel=Cancellation())
    assert loop.run_drill() is True
    state = read_state(settings_of(env).state_file)
    assert state is not None and state.last_drill_outcome == "success" and state.drills_total == 1
    text = metrics_of(env)
    assert metric(text, "pgbackup_last_scheduled_drill_success") == 1 and metric(text, "pgbackup_drill_passed") == 1
    (backup_set,) = scan(settings_of(env).sets_dir).sets
    assert backup_set.verification is not None and backup_set.verification.latest.kind == "drill"
    assert health_of(env) == (True, [])


def test_a_failed_scheduled_drill_turns_health_unhealthy_and_posts_the_webhook(
    make_env: EnvFactory, set_copy: Path, webhook: WebhookReceiver
) -> None:
    env = make_env(
        BACKUP_DIR=str(set_copy),
        BACKUP_DRILL_SCHEDULE="every 6 hours",
        BACKUP_DRILL_MAX_RTO="1ms",
        BACKUP_WEBHOOK_URL=webhook.url,
    )
    loop = BackupLoop(settings_of(env), clock=SystemClock(), cancel=Cancellation())
    assert loop.run_drill() is False
    healthy, reasons = health_of(env)
    assert not healthy and any("the scheduled restore drill at " in reason and "RTO" in reason for reason in reasons)
    assert [event["event"] for event in webhook.events] == ["drill_failed"]
    assert "RTO" in webhook.events[0]["error"]
    # the set itself restored fine: the threshold judges the operation, not the set
    (backup_set,) = scan(settings_of(env).sets_dir).sets
    assert backup_set.verified
    text = metrics_of(env)
    assert metric(text, "pgbackup_last_scheduled_drill_success") == 0
    assert metric(text, "pgbackup_scheduled_drill_failures_total") == 1


def test_an_overdue_scheduled_drill_turns_health_unhealthy(make_env: EnvFactory, set_copy: Path) -> None:
    env = make_env(BACKUP_DIR=str(set_copy), BACKUP_DRILL_SCHEDULE="every 1 hours", BACKUP_SCHEDULE="every 24 hours")
    settings = settings_of(env)
    assert main(["scrub"], environ=env) == ExitCode.OK  # writes the state file: the sidecar "ran here"
    state = read_state(settings.state_file)
    assert state is not None
    clock = FakeClock(state.initialized_at + timedelta(seconds=settings.max_drill_age or 0) + timedelta(minutes=1))
    healthy, reasons = health_of(env, clock)
    assert not healthy and any("the scheduled restore drill is overdue" in reason for reason in reasons)


def test_a_format_1_record_reads_as_the_backups_own_verdict(tmp_path: Path) -> None:
    (tmp_path / VERIFICATION_NAME).write_text(
        json.dumps({"format": 1, "ok": True, "verified_at": "2026-01-01T00:00:00Z", "checks": ["checksums"]})
    )
    verification = Verification.read(tmp_path)
    assert verification is not None and verification.ok
    assert [(verdict.kind, verdict.checks) for verdict in verification.history] == [("backup", ("checksums",))]
