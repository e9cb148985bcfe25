"""`scrub`: re-check every retained set now, at the scrub's read rate, and record each verdict (`make scrub`)."""

from __future__ import annotations

import argparse

from pgbackup.cancel import Cancellation
from pgbackup.catalog import scan
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode, SetNotFoundError
from pgbackup.scrub import scrub
from pgbackup.signals import install_handlers, run_in_worker

NAME = "scrub"
HELP = "re-check every retained set (checksums at BACKUP_SCRUB_RATE, pg_restore --list) and record the verdicts"
CONNECTS = False


def configure(parser: argparse.ArgumentParser) -> None:
    """No options: every set, at BACKUP_SCRUB_RATE."""


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    cancel = Cancellation()
    install_handlers(cancel)
    catalog = scan(settings.sets_dir)
    if not catalog.sets and not catalog.damaged:
        raise SetNotFoundError(f"no backup set in {settings.sets_dir} to scrub", "take one with `make backup-now`")
    result = run_in_worker(lambda: scrub(settings, clock=clock, cancel=cancel), name="pgbackup-scrub")
    failed = dict(result.failed)
    for set_id in result.checked:
        print(f"{set_id}: {'FAILED: ' + failed[set_id] if set_id in failed else 'ok'}")
    for name in result.damaged:
        print(f"{name}: DAMAGED: manifest unreadable")
    print(
        f"scrub {'passed' if result.ok else 'FAILED'}: {len(result.checked)} sets, {result.bytes_read} bytes read "
        f"in {result.seconds:.1f} s (limit {settings.scrub_rate} bytes/s)"
    )
    return ExitCode.OK if result.ok else ExitCode.VERIFY
