"""Retention: grandfather-father-son across months on a fake clock, its two safety rules, and prune on disk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgbackup.__main__ import main
from pgbackup.catalog import BackupSet, scan
from pgbackup.config import Settings
from pgbackup.errors import RetentionRefusedError
from pgbackup.files import shared_lock
from pgbackup.manifest import MANIFEST_NAME
from pgbackup.retention import Plan, Policy, check_plan, plan_retention, prune
from tests.fast.backup.helpers import FakeClock, fake_set, write_fake_set


def every(start: datetime, step: timedelta, count: int) -> list[datetime]:
    return [start + step * number for number in range(count)]


def ids(sets: list[BackupSet], plan: Plan) -> list[str]:
    return [backup_set.id for backup_set in sets if backup_set.id in plan.keep]


def test_keep_last_only() -> None:
    sets = [fake_set(at) for at in every(datetime(2026, 3, 1, tzinfo=UTC), timedelta(hours=1), 10)]
    plan = plan_retention(sets, Policy(keep_last=3, keep_daily=0, keep_weekly=0, keep_monthly=0))
    assert ids(sets, plan) == [backup_set.id for backup_set in sets[-3:]]
    assert plan.delete == [backup_set.id for backup_set in sets[:-3]]


def test_grandfather_father_son_across_four_months() -> None:
    """Hourly sets from 1 Jan to 30 Apr 2026: the newest of each tier's buckets stays, nothing else."""
    sets = [fake_set(at) for at in every(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1), 24 * 120)]
    plan = plan_retention(sets, Policy(keep_last=2, keep_daily=3, keep_weekly=2, keep_monthly=3))
    kept = {set_id: sorted(reasons) for set_id, reasons in plan.keep.items()}
    assert kept == {
        "20260430T230000Z": ["daily", "last", "monthly", "newest verified", "weekly"],
        "20260430T220000Z": ["last"],
        "20260429T230000Z": ["daily"],
        "20260428T230000Z": ["daily"],
        "20260426T230000Z": ["weekly"],  # Sunday: the end of ISO week 17
        "20260331T230000Z": ["monthly"],
        "20260228T230000Z": ["monthly"],
    }
    assert len(plan.delete) == len(sets) - len(kept)


def test_buckets_follow_the_time_zone() -> None:
    """23:30 UTC on 31 March is already 1 April in Berlin: another day and another month there."""
    sets = [fake_set(datetime(2026, 3, 31, 21, 0, tzinfo=UTC)), fake_set(datetime(2026, 3, 31, 23, 30, tzinfo=UTC))]
    utc = plan_retention(sets, Policy(keep_last=0, keep_daily=2, keep_weekly=0, keep_monthly=0, tz="UTC"))
    berlin = plan_retention(sets, Policy(keep_last=0, keep_daily=2, keep_weekly=0, keep_monthly=0, tz="Europe/Berlin"))
    assert ids(sets, utc) == [sets[1].id]
    assert ids(sets, berlin) == [sets[0].id, sets[1].id]


def test_a_gap_never_expires_older_sets_early() -> None:
    """Days without any backup are skipped, not counted: keep_daily=3 keeps three days that have sets."""
    sets = [fake_set(datetime(2026, 1, day, 12, tzinfo=UTC)) for day in (1, 2, 3)] + [
        fake_set(datetime(2026, 2, 20, 12, tzinfo=UTC))
    ]
    plan = plan_retention(sets, Policy(keep_last=0, keep_daily=3, keep_weekly=0, keep_monthly=0))
    assert ids(sets, plan) == [sets[1].id, sets[2].id, sets[3].id]


def test_failed_sets_count_for_nothing_and_the_newest_good_one_is_kept() -> None:
    """Newer sets that failed their latest check do not fill keep_last: the two newest good ones stay, the
    failed ones go (the prune after the next good backup deletes them, after a re-check)."""
    start = datetime(2026, 5, 1, tzinfo=UTC)
    good = [fake_set(start + timedelta(minutes=minute)) for minute in range(3)]
    failed = [fake_set(start + timedelta(hours=hour), verified=False) for hour in range(1, 6)]
    sets = good + failed
    plan = plan_retention(sets, Policy(keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0))
    assert plan.keep[good[2].id] == ["last", "newest verified"]
    assert plan.keep[good[1].id] == ["last"]
    assert ids(sets, plan) == [good[1].id, good[2].id]
    assert plan.delete == [good[0].id, *(backup_set.id for backup_set in failed)]


def test_tiers_keep_only_verified_sets() -> None:
    sets = [fake_set(datetime(2026, 5, day, tzinfo=UTC), verified=day % 2 == 0) for day in range(1, 7)]
    plan = plan_retention(sets, Policy(keep_last=0, keep_daily=10, keep_weekly=0, keep_monthly=0))
    assert ids(sets, plan) == [sets[1].id, sets[3].id, sets[5].id]


def test_a_plan_deleting_every_set_is_refused() -> None:
    sets = [fake_set(datetime(2026, 5, 1, hour, tzinfo=UTC), verified=False) for hour in range(3)]
    plan = plan_retention(sets, Policy(keep_last=0, keep_daily=7, keep_weekly=4, keep_monthly=6))
    assert plan.keep == {}
    with pytest.raises(RetentionRefusedError, match="would delete all 3 sets"):
        check_plan(sets, plan)


def test_a_plan_deleting_the_newest_verified_set_is_refused() -> None:
    sets = [fake_set(datetime(2026, 5, 1, hour, tzinfo=UTC)) for hour in range(3)]
    with pytest.raises(RetentionRefusedError, match=f"newest verified set {sets[2].id}"):
        check_plan(sets, Plan(keep={sets[0].id: ["last"]}, delete=[sets[1].id, sets[2].id]))


def prune_settings(backup_dir: Path, **overrides: str) -> Settings:
    return Settings.from_env(
        {
            "BACKUP_DIR": str(backup_dir),
            "BACKUP_KEEP_LAST": "3",
            "BACKUP_KEEP_DAILY": "2",
            "BACKUP_KEEP_WEEKLY": "2",
            "BACKUP_KEEP_MONTHLY": "2",
            **overrides,
        }
    )


def test_prune_on_disk_with_a_fake_clock_across_months(tmp_path: Path, fake_clock: FakeClock) -> None:
    """A set every 6 hours for 100 days, pruned after each like the sidecar does: the survivors are exact."""
    settings = prune_settings(tmp_path)
    for _ in range(4 * 100):
        write_fake_set(settings.sets_dir, fake_clock.now())
        prune(settings, clock=fake_clock, dry_run=False)
        fake_clock.advance(timedelta(hours=6))
    survivors = [backup_set.id for backup_set in scan(settings.sets_dir).sets]
    assert survivors == [
        "20260331T183000Z",  # monthly: the newest of March
        "20260405T183000Z",  # weekly: the newest of ISO week 14
        "20260409T183000Z",  # daily (9 April)
        "20260410T063000Z",  # last 3
        "20260410T123000Z",
        "20260410T183000Z",  # newest: last, daily, weekly, monthly
    ]
    assert sorted(path.name for path in settings.sets_dir.iterdir()) == survivors, "no .deleting leftovers"


def test_prune_dry_run_deletes_nothing(tmp_path: Path) -> None:
    settings = prune_settings(tmp_path, BACKUP_KEEP_DAILY="0", BACKUP_KEEP_WEEKLY="0", BACKUP_KEEP_MONTHLY="0")
    written = [
        write_fake_set(settings.sets_dir, at) for at in every(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1), 5)
    ]
    plan = prune(settings, clock=FakeClock(datetime(2026, 1, 2, tzinfo=UTC)), dry_run=True)
    assert plan.delete == written[:2]
    assert [backup_set.id for backup_set in scan(settings.sets_dir).sets] == written


def test_prune_skips_a_set_that_a_restore_is_reading(tmp_path: Path) -> None:
    settings = prune_settings(
        tmp_path, BACKUP_KEEP_LAST="1", BACKUP_KEEP_DAILY="0", BACKUP_KEEP_WEEKLY="0", BACKUP_KEEP_MONTHLY="0"
    )
    written = [
        write_fake_set(settings.sets_dir, at) for at in every(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1), 3)
    ]
    with shared_lock(settings.sets_dir / written[0] / MANIFEST_NAME):
        plan = prune(settings, clock=FakeClock(datetime(2026, 1, 2, tzinfo=UTC)), dry_run=False)
    assert plan.delete == [written[1]]
    assert plan.keep[written[0]] == ["in use (a restore or drill reads it)"]
    assert [backup_set.id for backup_set in scan(settings.sets_dir).sets] == [written[0], written[2]]


def test_prune_refuses_when_every_set_failed_verification(tmp_path: Path) -> None:
    settings = prune_settings(tmp_path, BACKUP_KEEP_LAST="0")
    written = [
        write_fake_set(settings.sets_dir, datetime(2026, 1, 1, hour, tzinfo=UTC), verified=False) for hour in range(2)
    ]
    with pytest.raises(RetentionRefusedError):
        prune(settings, clock=FakeClock(datetime(2026, 1, 2, tzinfo=UTC)), dry_run=False)
    assert [backup_set.id for backup_set in scan(settings.sets_dir).sets] == written


def test_prune_command_dry_run_lists_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "BACKUP_DIR": str(tmp_path),
        "BACKUP_KEEP_LAST": "1",
        "BACKUP_KEEP_DAILY": "0",
        "BACKUP_KEEP_WEEKLY": "0",
        "BACKUP_KEEP_MONTHLY": "0",
    }
    written = [
        write_fake_set(tmp_path / "sets", at) for at in every(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1), 3)
    ]
    assert main(["prune", "--dry-run"], environ=env, clock=FakeClock(datetime(2026, 1, 2, tzinfo=UTC))) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"delete {written[0]}  verified",
        f"delete {written[1]}  verified",
        f"keep    {written[2]}  verified    last, newest verified",
        "1 kept, 2 to delete",
    ]
    assert main(["prune"], environ=env, clock=FakeClock(datetime(2026, 1, 2, tzinfo=UTC))) == 0
    assert [backup_set.id for backup_set in scan(Path(tmp_path) / "sets").sets] == [written[2]]
