"""`verify-offsite [--set ID|latest] --identity PATH|-`: download an offsite copy, decrypt it, check it.

`make verify-offsite AGE_KEY=<private key file> [BACKUP=<id|latest>]` runs it in a one-off container of the
backup service and hands the key in on standard input (`--identity -`): it lives in the container's /tmp
(memory) for the command, never in the stack. The copy is only read: a wrong key changes nothing there.
"""

from __future__ import annotations

import argparse
import shutil

from pgbackup.age import identity_file
from pgbackup.cancel import Cancellation
from pgbackup.catalog import LATEST
from pgbackup.clock import Clock
from pgbackup.config import Settings
from pgbackup.errors import ExitCode
from pgbackup.offsite import fetch_copy, scratch_dir
from pgbackup.signals import install_handlers, run_in_worker

NAME = "verify-offsite"
HELP = "download the newest offsite copy (or --set), decrypt it with --identity, check every checksum and archive"
CONNECTS = False


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="set_id", default=LATEST, metavar="ID|latest", help="the copy (default: the newest complete)"
    )
    parser.add_argument(
        "--identity", required=True, metavar="PATH|-", help="the age private key file, or - to read it from stdin"
    )


def execute(args: argparse.Namespace, settings: Settings, clock: Clock) -> int:
    cancel = Cancellation()
    install_handlers(cancel)
    scratch = scratch_dir(settings)
    try:
        with identity_file(args.identity) as identity:
            backup_set = run_in_worker(
                lambda: fetch_copy(settings, args.set_id, identity, scratch, clock=clock, cancel=cancel),
                name="pgbackup-verify-offsite",
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    manifest = backup_set.manifest
    print(
        f"offsite copy {backup_set.id}: ok: decrypted {len(manifest.files) + 1} files, every sha256 matches the "
        f"manifest, {len(manifest.databases)} archive(s) list with pg_restore ({manifest.bytes} bytes)"
    )
    return ExitCode.OK
