"""`fetch-offsite [--set ID|latest] --identity PATH|- --into DIR`: download an offsite copy, decrypt it and verify
it into `DIR/sets/<id>`, a set like any local one (its verdict recorded), for the drill of an offsite copy.

`make drill-offsite` (ops/drill-offsite.sh) runs it in a one-off container of the backup service, which reaches
the target, then the drill on the fetched set in the restore-drill container, which has no network, then
removes DIR. The last line printed is `set=<id>`, for the script.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pgbackup.age import identity_file
from pgbackup.cancel import Cancellation
from pgbackup.catalog import LATEST
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode, UsageError
from pgbackup.offsite import fetch_copy
from pgbackup.signals import install_handlers, run_in_worker

NAME = "fetch-offsite"
HELP = "download, decrypt and verify an offsite copy into DIR/sets/<id> (for the drill of an offsite copy)"
CONNECTS = False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="set_id", default=LATEST, metavar="ID|latest", help="the copy (default: the newest complete)"
    )
    parser.add_argument(
        "--identity", required=True, metavar="PATH|-", help="the age private key file, or - to read it from stdin"
    )
    parser.add_argument("--into", required=True, type=Path, metavar="DIR", help="an absolute path on the volume")


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    if not args.into.is_absolute() or args.into.resolve() == settings.backup_dir.resolve():
        raise UsageError(
            f"unable to fetch into {args.into}: not an absolute directory of its own",
            f"use a scratch directory such as {settings.backup_dir}/.offsite-drill (BACKUP_DIR/sets holds the sets)",
        )
    cancel = Cancellation()
    install_handlers(cancel)
    with identity_file(args.identity) as identity:
        backup_set = run_in_worker(
            lambda: fetch_copy(settings, args.set_id, identity, args.into / "sets", clock=clock, cancel=cancel),
            name="pgbackup-fetch-offsite",
        )
    print(f"fetched offsite copy {backup_set.id} into {args.into}: decrypted, every sha256 matches its manifest")
    print(f"set={backup_set.id}")
    return ExitCode.OK
