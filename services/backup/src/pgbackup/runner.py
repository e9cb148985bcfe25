"""One backup job, as the schedule loop and `backup` run it: take the run lock, clear leftovers of
interrupted runs, check free space, take the set, prune, and record the outcome in the state file.

`run_job()` is what the scheduler calls: it never raises (a job exception must not kill the loop),
records the failure, and posts the webhook. `run_once()` is the same work for one-shot use; it raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pgbackup.cancel import Cancellation
from pgbackup.catalog import BackupSet, remove_leftovers
from pgbackup.checks import check_free_space
from pgbackup.clock import Clock, to_iso
from pgbackup.config import Settings
from pgbackup.dump import take_backup
from pgbackup.errors import AbortedError, BackupError, DumpError, LockedError, RetentionRefusedError
from pgbackup.files import exclusive_lock
from pgbackup.offsite import copy_set, prune_copies
from pgbackup.retention import prune
from pgbackup.state import State, update_state
from pgbackup.webhook import notify_failure

logger = logging.getLogger(__name__)


@dataclass
class BackupRunner:
    settings: Settings
    clock: Clock
    cancel: Cancellation

    def run_once(self) -> BackupSet:
        """Take one set now (then prune); raise the failure after recording it."""
        settings = self.settings
        began = self.clock.monotonic()
        try:
            settings.sets_dir.mkdir(parents=True, exist_ok=True)
            with exclusive_lock(settings.backup_dir / ".run.lock", what="a backup"):
                remove_leftovers(settings.sets_dir)
                problems = check_free_space(settings)
                if problems:
                    raise DumpError(problems[0].what, *problems[0].hints)
                backup_set = take_backup(settings, clock=self.clock, cancel=self.cancel)
                self._record_success(backup_set, self.clock.monotonic() - began)
                self._prune()
                if settings.offsite:
                    self._copy_offsite(backup_set)
                return backup_set
        except LockedError:
            raise  # another run is doing the work: not a failure of the backups
        except BackupError as exc:
            self._record_failure(exc)
            raise
        except Exception as exc:
            failure = DumpError(f"unable to take a backup: {type(exc).__name__}: {exc}")
            self._record_failure(failure)
            raise failure from exc

    def run_job(self) -> bool:
        """The scheduled job: True on success; every failure is logged, recorded and reported, never raised."""
        if self.cancel.cancelled:
            return False
        try:
            self.run_once()
        except AbortedError as exc:
            logger.warning("backup aborted: %s", exc.message)
            return False
        except LockedError as exc:
            logger.warning("backup skipped: %s", exc.message)
            return False
        except Exception as exc:  # the loop must survive anything a job does
            logger.error("backup failed: %s", exc)
            return False
        return True

    def _prune(self) -> None:
        try:
            plan = prune(self.settings, clock=self.clock, dry_run=False)
        except (RetentionRefusedError, OSError) as exc:
            logger.error("retention did not run: %s", exc)
            message = str(exc)

            def record(state: State) -> None:
                state.last_prune_at = self.clock.now()
                state.last_prune_error = message

            update_state(self.settings.state_file, self.clock, record)
            return
        if plan.delete:
            logger.info("retention deleted sets=%s kept=%d", ",".join(plan.delete), len(plan.keep))

    def _copy_offsite(self, backup_set: BackupSet) -> None:
        """Copy the verified set offsite and apply the offsite retention; a failure is logged, recorded (metrics,
        alert) and posted to the webhook, never raised: the local set is good and the next backup goes on."""
        try:
            copy = copy_set(self.settings, backup_set, clock=self.clock)
            prune_copies(self.settings, keep_also=copy.id)
        except Exception as exc:  # whatever the target does, the local backups must go on
            message = exc.message if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
            logger.error(
                "offsite copy failed set=%s: %s (the local set is kept and verified; the next backup copies again)",
                backup_set.id,
                str(exc).replace("\n", " "),
            )
            now = self.clock.now()

            def record_failure(state: State) -> None:
                state.offsite_last_failure_at = now
                state.offsite_last_error = message
                state.offsite_failures_total += 1
                state.offsite_consecutive_failures += 1

            state = update_state(self.settings.state_file, self.clock, record_failure)
            notify_failure(
                self.settings,
                {
                    "event": "offsite_copy_failed",
                    "at": to_iso(now),
                    "set": backup_set.id,
                    "error": message,
                    "consecutive_failures": state.offsite_consecutive_failures,
                },
            )
            return

        def record_success(state: State) -> None:
            state.offsite_last_success_at = self.clock.now()
            state.offsite_last_set = copy.id
            state.offsite_copies_total += 1
            state.offsite_consecutive_failures = 0

        update_state(self.settings.state_file, self.clock, record_success)

    def _record_success(self, backup_set: BackupSet, seconds: float) -> None:
        def record(state: State) -> None:
            state.last_attempt_at = backup_set.manifest.started_at
            state.last_outcome = "success"
            state.last_success_at = backup_set.manifest.finished_at
            state.last_success_set = backup_set.id
            state.last_duration_seconds = round(seconds, 3)
            state.last_bytes = backup_set.manifest.bytes
            state.successes_total += 1
            state.consecutive_failures = 0

        update_state(self.settings.state_file, self.clock, record)

    def _record_failure(self, exc: BaseException) -> None:
        aborted = isinstance(exc, AbortedError)
        message = exc.message if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
        now = self.clock.now()

        def record(state: State) -> None:
            state.last_attempt_at = now
            state.last_outcome = "aborted" if aborted else "failure"
            state.last_error = message
            if not aborted:
                state.last_failure_at = now
                state.failures_total += 1
                state.consecutive_failures += 1

        try:
            state = update_state(self.settings.state_file, self.clock, record)
        except OSError as write_error:  # e.g. the volume is full: the log line is then the only record
            logger.error("unable to record the failure in %s: %s", self.settings.state_file, write_error)
            state = None
        if not aborted:
            notify_failure(
                self.settings,
                {
                    "event": "backup_failed",
                    "at": to_iso(now),
                    "error": message,
                    "consecutive_failures": state.consecutive_failures if state else None,
                },
            )
