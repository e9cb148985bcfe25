"""Scrubs: re-check every retained set where it lies, so that bit rot is found by the sidecar and not by the
restore that needed the set.

A scrub re-reads every file of every set from the disk (the page cache dropped first, as the backup's own
verification does) against the manifest's sizes and sha256, lists every archive with `pg_restore --list`, and
appends the verdict to the set's record (`verification.json`): a set whose latest check failed stops being good
for `latest`, freshness, health and retention. A set whose manifest no longer parses is reported as damaged.
Reads go at most `BACKUP_SCRUB_RATE` bytes per second on average, so a scrub never starves the database's disk.
The outcome goes to the state file (health, /status, /metrics) and, when a set failed, to the webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pgbackup.cancel import Cancellation
from pgbackup.catalog import scan
from pgbackup.clock import Clock, to_iso
from pgbackup.config import Settings
from pgbackup.files import shared_lock
from pgbackup.manifest import MANIFEST_NAME, Verification
from pgbackup.state import State, update_state
from pgbackup.verify import verify_set
from pgbackup.webhook import notify_failure

logger = logging.getLogger(__name__)


class ReadRate:
    """Called with each chunk's size; sleeps (cancellably) so that the bytes read since the start stay at or under
    `bytes_per_second` times the elapsed time."""

    def __init__(self, bytes_per_second: int, *, wait: Callable[[float], object], monotonic: Callable[[], float]):
        self.bytes_per_second = bytes_per_second
        self.total = 0
        self._wait = wait
        self._monotonic = monotonic
        self._started = monotonic()

    def __call__(self, size: int) -> None:
        self.total += size
        ahead = self.total / self.bytes_per_second - (self._monotonic() - self._started)
        if ahead > 0:
            self._wait(ahead)


@dataclass(slots=True)
class ScrubResult:
    """What one scrub found: the sets checked, those that failed (id, what failed), damaged set directories."""

    checked: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.damaged

    def problems(self) -> list[str]:
        return [f"set {set_id}: {error}" for set_id, error in self.failed] + [
            f"set {name}: manifest unreadable (damaged)" for name in self.damaged
        ]


def scrub(settings: Settings, *, clock: Clock, cancel: Cancellation) -> ScrubResult:
    """Check every set now, record each verdict, then the scrub's outcome; never deletes anything."""
    began = clock.monotonic()
    result = ScrubResult()

    def pause(seconds: float) -> None:
        if cancel.wait(seconds):
            cancel.check()

    rate = ReadRate(settings.scrub_rate, wait=pause, monotonic=clock.monotonic)
    catalog = scan(settings.sets_dir)
    logger.info("scrub started sets=%d rate=%d bytes/s", len(catalog.sets), settings.scrub_rate)
    for backup_set in catalog.sets:
        cancel.check()
        try:
            with shared_lock(backup_set.path / MANIFEST_NAME):
                verdict = verify_set(
                    backup_set.path,
                    backup_set.manifest,
                    kind="scrub",
                    bin_dir=settings.pg_bin_dir,
                    clock=clock,
                    cancel=cancel,
                    on_read=rate,
                )
                cancel.check()
                Verification.record(backup_set.path, verdict)
        except FileNotFoundError:  # retention deleted it since the scan: nothing left to check
            logger.info("scrub skipped a set deleted meanwhile set=%s", backup_set.id)
            continue
        result.checked.append(backup_set.id)
        if not verdict.ok:
            result.failed.append((backup_set.id, verdict.error or "failed"))
    result.damaged = [path.name for path in catalog.damaged]
    result.bytes_read = rate.total
    result.seconds = round(clock.monotonic() - began, 3)
    _record(settings, clock, result)
    if result.ok:
        logger.info(
            "scrub passed sets=%d bytes=%d seconds=%.1f", len(result.checked), result.bytes_read, result.seconds
        )
    else:
        logger.error("scrub failed problems=%s", "; ".join(result.problems()))
        notify_failure(
            settings,
            {
                "event": "scrub_failed",
                "at": to_iso(clock.now()),
                "error": "; ".join(result.problems()),
                "failed_sets": [set_id for set_id, _ in result.failed],
                "damaged_sets": result.damaged,
            },
        )
    return result


def _record(settings: Settings, clock: Clock, result: ScrubResult) -> None:
    now = clock.now()

    def record(state: State) -> None:
        state.last_scrub_at = now
        state.last_scrub_outcome = "success" if result.ok else "failure"
        state.last_scrub_problems = result.problems()
        state.last_scrub_bytes = result.bytes_read
        state.scrubs_total += 1
        state.scrub_failures_total += 0 if result.ok else 1

    try:
        update_state(settings.state_file, clock, record)
    except OSError as exc:  # the verdicts are on the sets already; the log line is the scrub's record then
        logger.error("unable to record the scrub in %s: %s", settings.state_file, exc)


__all__ = ["ReadRate", "ScrubResult", "scrub"]
