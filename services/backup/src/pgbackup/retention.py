"""Grandfather-father-son retention with two safety rules: the newest good set is never deleted, and a plan
that would delete every set is refused.

Policy, over the complete sets (oldest first in, newest first considered):
  keep_last N      the newest N sets that did not fail their latest check (good, or never checked);
  keep_daily N     the newest verified set of each of the N most recent days that have one;
  keep_weekly N    same per ISO week;  keep_monthly N  same per calendar month.
Days, weeks and months are read in BACKUP_TZ. A bucket with no verified set is skipped, not counted,
so a gap in backups never makes older sets expire early (restic's rule).

A set whose latest check failed (a scrub or drill found it broken) counts for nothing and is kept by no rule, so
the prune after the next good backup deletes it; right before, it is checked once more (`recheck`), and a set
that passes again is kept this time (a transient read error never costs a good set).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pytz

from pgbackup.catalog import DELETING_SUFFIX, BackupSet, scan
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import RetentionRefusedError
from pgbackup.files import fsync_path, shared_lock, try_exclusive
from pgbackup.manifest import MANIFEST_NAME, Verification
from pgbackup.state import State, update_state
from pgbackup.verify import verify_set

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    keep_last: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    tz: str = "UTC"

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.keep_last, settings.keep_daily, settings.keep_weekly, settings.keep_monthly, settings.tz)


@dataclass(slots=True)
class Plan:
    """Which set ids stay (with the rules that keep each) and which go, oldest first."""

    keep: dict[str, list[str]] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)


def _bucket_rules(tz: str) -> list[tuple[str, Callable[[datetime], tuple[int, ...]]]]:
    zone = pytz.timezone(tz)

    def local(moment: datetime) -> datetime:
        return moment.astimezone(zone)

    return [
        ("daily", lambda moment: (local(moment).year, local(moment).month, local(moment).day)),
        ("weekly", lambda moment: tuple(local(moment).isocalendar())[:2]),
        ("monthly", lambda moment: (local(moment).year, local(moment).month)),
    ]


def plan_retention(sets: Sequence[BackupSet], policy: Policy) -> Plan:
    """Decide what to keep; pure (no I/O), so tests drive it across months with made-up sets."""
    newest_first = sorted(sets, key=lambda backup_set: (backup_set.snapshot_at, backup_set.id), reverse=True)
    plan = Plan()

    def keep(backup_set: BackupSet, reason: str) -> None:
        plan.keep.setdefault(backup_set.id, []).append(reason)

    for backup_set in [backup_set for backup_set in newest_first if not backup_set.failed][: policy.keep_last]:
        keep(backup_set, "last")
    verified = [backup_set for backup_set in newest_first if backup_set.verified]
    if verified:
        keep(verified[0], "newest verified")
    limits = {"daily": policy.keep_daily, "weekly": policy.keep_weekly, "monthly": policy.keep_monthly}
    for name, bucket_of in _bucket_rules(policy.tz):
        seen: set[tuple[int, ...]] = set()
        for backup_set in verified:
            if len(seen) >= limits[name]:
                break
            bucket = bucket_of(backup_set.snapshot_at)
            if bucket not in seen:
                seen.add(bucket)
                keep(backup_set, name)
    plan.delete = [backup_set.id for backup_set in reversed(newest_first) if backup_set.id not in plan.keep]
    return plan


def check_plan(sets: Sequence[BackupSet], plan: Plan) -> None:
    """Refuse a plan that deletes every set or the newest good one, whatever the policy said."""
    if sets and len(plan.delete) == len(sets):
        raise RetentionRefusedError(
            f"unable to prune: the policy would delete all {len(sets)} sets",
            "no set is verified: run `python -m pgbackup verify`, take a new backup, or raise BACKUP_KEEP_LAST",
        )
    verified = [backup_set for backup_set in sets if backup_set.verified]
    if verified:
        newest = max(verified, key=lambda backup_set: (backup_set.snapshot_at, backup_set.id))
        if newest.id in plan.delete:
            raise RetentionRefusedError(f"unable to prune: the plan would delete the newest verified set {newest.id}")


def prune(settings: Settings, *, clock: Clock, dry_run: bool) -> Plan:
    """Apply the policy to the sets on disk (call under the run lock); refuse to delete every set."""
    catalog = scan(settings.sets_dir)
    plan = plan_retention(catalog.sets, Policy.from_settings(settings))
    check_plan(catalog.sets, plan)
    if dry_run:
        return plan
    deleted = []
    failed = {backup_set.id: backup_set for backup_set in catalog.sets if backup_set.failed}
    for set_id in plan.delete:
        if set_id in failed and _passes_recheck(settings, failed[set_id], clock):
            plan.keep[set_id] = ["passed a re-check after a failed one"]
            continue
        if _delete_set(settings, set_id):
            deleted.append(set_id)
        else:
            plan.keep[set_id] = ["in use (a restore or drill reads it)"]
    plan.delete = deleted

    def record(state: State) -> None:
        state.last_prune_at = clock.now()
        state.last_prune_error = None
        state.last_pruned = deleted

    update_state(settings.state_file, clock, record)
    return plan


def _passes_recheck(settings: Settings, backup_set: BackupSet, clock: Clock) -> bool:
    """Check a failed set once more before deleting it for that failure; record the verdict either way."""
    assert backup_set.verification is not None
    logger.info(
        "re-checking a failed set before deleting it set=%s (%s)",
        backup_set.id,
        backup_set.verification.latest.describe(),
    )
    with shared_lock(backup_set.path / MANIFEST_NAME):
        verdict = verify_set(
            backup_set.path, backup_set.manifest, kind="recheck", bin_dir=settings.pg_bin_dir, clock=clock
        )
        Verification.record(backup_set.path, verdict)
    return verdict.ok


def _delete_set(settings: Settings, set_id: str) -> bool:
    """Rename the set to `<id>.deleting` (atomic: it stops being a set), then remove it; False if in use."""
    directory = settings.sets_dir / set_id
    fd = try_exclusive(directory / MANIFEST_NAME)
    if fd is None:
        logger.warning("retention skipped a set in use set=%s", set_id)
        return False
    try:
        doomed = settings.sets_dir / f"{set_id}{DELETING_SUFFIX}"
        os.replace(directory, doomed)
        fsync_path(settings.sets_dir)
    finally:
        os.close(fd)
    shutil.rmtree(doomed)
    logger.info("retention deleted set=%s", set_id)
    return True
