"""`backup`: take one verified set now (what `make backup-now` runs), then apply retention."""

from __future__ import annotations

import argparse

from pgbackup.cancel import Cancellation
from pgbackup.checks import startup_checks
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode
from pgbackup.runner import BackupRunner
from pgbackup.signals import install_handlers, run_in_worker

NAME = "backup"
HELP = "take one backup set now, verify it, then prune by the retention policy"
CONNECTS = True


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-checks", action="store_true", help="skip the startup checks (the backup still fails clearly)"
    )


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    cancel = Cancellation()
    install_handlers(cancel)
    if not args.skip_checks:
        run_in_worker(lambda: startup_checks(settings, clock=clock, cancel=cancel), name="pgbackup-checks")
    backup_set = run_in_worker(BackupRunner(settings, clock, cancel).run_once, name="pgbackup-backup")
    manifest = backup_set.manifest
    print(
        f"backup set {backup_set.id}: verified, {manifest.bytes} bytes in {manifest.duration_seconds:.1f} s, "
        f"databases {', '.join(database.name for database in manifest.databases)}"
    )
    return ExitCode.OK
