"""`verify [--set ID|latest]`: re-verify sets (all by default) and record the outcome beside each."""

from __future__ import annotations

import argparse

from pgbackup.cancel import Cancellation
from pgbackup.catalog import scan
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode, SetNotFoundError
from pgbackup.files import shared_lock
from pgbackup.manifest import MANIFEST_NAME, Verification
from pgbackup.signals import install_handlers, run_in_worker
from pgbackup.verify import verify_set

NAME = "verify"
HELP = "re-read every checksum and list every archive of a set (default: all sets)"
CONNECTS = False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="set_id", metavar="ID|latest", help="one set: its id, or latest (newest verified)"
    )


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    cancel = Cancellation()
    install_handlers(cancel)
    catalog = scan(settings.sets_dir)
    targets = [catalog.resolve(args.set_id)] if args.set_id else list(catalog.sets)
    if not targets:
        raise SetNotFoundError(f"no backup set in {settings.sets_dir} to verify", "take one with `make backup-now`")
    failed = 0
    for backup_set in targets:
        with shared_lock(backup_set.path / MANIFEST_NAME):
            verdict = run_in_worker(
                lambda target=backup_set: verify_set(  # type: ignore[misc]
                    target.path, target.manifest, kind="verify", bin_dir=settings.pg_bin_dir, clock=clock, cancel=cancel
                ),
                name="pgbackup-verify",
            )
            cancel.check()
            Verification.record(backup_set.path, verdict)
        print(f"{backup_set.id}: {'ok' if verdict.ok else 'FAILED: ' + str(verdict.error)}")
        failed += 0 if verdict.ok else 1
    return ExitCode.VERIFY if failed else ExitCode.OK
