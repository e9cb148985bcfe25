"""`restore --set ID|latest|offsite:ID|offsite:latest --target-db NAME [--source-db NAME] [--force]
[--identity PATH|-]`: restore into a new database. An offsite copy (when the local volume is gone) is first
downloaded, decrypted with the age key `--identity` names and verified, into scratch space on the volume.

`make restore BACKUP=... SOURCE_DB=... TARGET_DB=... [FORCE=1]` runs it in the `restore` service, passing an
empty string for a variable left out: an empty --source-db is no --source-db, an empty --target-db is refused.
A missing or wrong argument (exit 2, 12 or 13) ends with the form of the make command.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace

from pgbackup.age import identity_file
from pgbackup.cancel import Cancellation
from pgbackup.catalog import LATEST
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode, SetNotFoundError, TargetExistsError, UsageError
from pgbackup.offsite import PREFIX as OFFSITE
from pgbackup.offsite import fetch_copy, scratch_dir
from pgbackup.restore import restore_set
from pgbackup.signals import install_handlers, run_in_worker

NAME = "restore"
HELP = "restore a database of a set into a new database (an existing one only with --force)"
CONNECTS = True
MAKE_USAGE = "make restore BACKUP=<id|latest> SOURCE_DB=<db> TARGET_DB=<new-name> [FORCE=1]"
OFFSITE_USAGE = "make restore BACKUP=offsite:<id>|offsite:latest AGE_KEY=<age private key file> SOURCE_DB=<db> ..."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="set_id", default=LATEST, metavar="ID|latest", help="the set (default: latest verified)"
    )
    parser.add_argument("--target-db", required=True, metavar="NAME", help="database to create")
    parser.add_argument("--source-db", metavar="NAME", help="which database of the set (needed when it holds several)")
    parser.add_argument(
        "--identity",
        metavar="PATH|-",
        help="the age private key that decrypts an offsite copy (--set offsite:ID|offsite:latest); - reads stdin",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace the target if it exists (after the restored copy verifies)"
    )


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    cancel = Cancellation()
    install_handlers(cancel)
    if args.set_id.startswith(OFFSITE):
        if not args.identity:
            raise UsageError(
                f"unable to restore {args.set_id}: an offsite copy needs the age private key to decrypt it",
                f"usage: {OFFSITE_USAGE}",
            )
        scratch = scratch_dir(settings)
        try:
            with identity_file(args.identity) as identity:
                fetched = run_in_worker(
                    lambda: fetch_copy(
                        settings,
                        args.set_id.removeprefix(OFFSITE),
                        identity,
                        scratch / "sets",
                        clock=clock,
                        cancel=cancel,
                    ),
                    name="pgbackup-fetch",
                )
            print(f"fetched offsite copy {fetched.id}: decrypted, every sha256 matches its manifest")
            return _restore(args, replace(settings, backup_dir=scratch), fetched.id, clock, cancel)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _restore(args, settings, args.set_id, clock, cancel)


def _restore(args: argparse.Namespace, settings: Settings, selector: str, clock: Clock, cancel: Cancellation) -> int:
    try:
        result = run_in_worker(
            lambda: restore_set(
                settings,
                selector=selector,
                target_db=args.target_db,
                source_db=args.source_db or None,
                force=args.force,
                clock=clock,
                cancel=cancel,
            ),
            name="pgbackup-restore",
        )
    except (UsageError, SetNotFoundError, TargetExistsError) as exc:
        exc.hints = (*exc.hints, f"usage: {MAKE_USAGE}", f"usage: {OFFSITE_USAGE}")
        raise
    if result.passed_over:
        print(f"latest: {result.passed_over}")
    print(
        f"restored {result.source_db} of set {result.set_id} into {result.target_db}"
        f"{' (replaced the existing database)' if result.replaced else ''}: {result.tables} tables, "
        f"{result.rows} rows, counts match the manifest, {result.seconds:.1f} s"
    )
    if result.roles_created:
        print(
            f"created missing roles without passwords: {', '.join(result.roles_created)}; "
            "set each one's password with ALTER ROLE <name> PASSWORD before it logs in"
        )
    return ExitCode.OK
