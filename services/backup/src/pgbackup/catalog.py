"""The backup sets on disk: naming, listing, choosing one, and clearing what interrupted runs left.

Layout under BACKUP_DIR/sets/:
  <id>/            a complete set: archives, globals.sql, manifest.json, verification.json
  <id>.partial/    a set being written (or left by a crash): never listed, removed by the next run
  <id>.deleting/   a set being deleted by retention: never listed, removed by the next run
A set id is the UTC start time, `YYYYMMDDTHHMMSSZ`, with `-N` appended in the rare case of a clash.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pgbackup.errors import SetNotFoundError, VerificationError
from pgbackup.manifest import Manifest, Verification

logger = logging.getLogger(__name__)

SET_ID = re.compile(r"^\d{8}T\d{6}Z(?:-\d+)?$")
PARTIAL_SUFFIX = ".partial"
DELETING_SUFFIX = ".deleting"
LATEST = "latest"


@dataclass(frozen=True, slots=True)
class BackupSet:
    """A complete set on disk, its manifest, and its last verification (None: never verified)."""

    id: str
    path: Path
    manifest: Manifest
    verification: Verification | None

    @property
    def verified(self) -> bool:
        """Good: its latest check passed (the backup's own, or a later verify, scrub or drill)."""
        return self.verification is not None and self.verification.ok

    @property
    def failed(self) -> bool:
        """Its latest check failed: not restorable as far as anyone knows; never picked, counted or kept."""
        return self.verification is not None and not self.verification.ok

    @property
    def snapshot_at(self) -> datetime:
        return self.manifest.snapshot_at


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a scan of the sets directory found; `sets` is ordered oldest first."""

    sets: tuple[BackupSet, ...]
    damaged: tuple[Path, ...] = ()
    leftovers: tuple[Path, ...] = field(default=())

    @property
    def newest_verified(self) -> BackupSet | None:
        """The newest good set: what `latest` means, what freshness and retention go by."""
        verified = [backup_set for backup_set in self.sets if backup_set.verified]
        return verified[-1] if verified else None

    @property
    def failed(self) -> tuple[BackupSet, ...]:
        """Sets whose latest check failed, newest first."""
        return tuple(backup_set for backup_set in reversed(self.sets) if backup_set.failed)

    def passed_over(self, chosen: BackupSet) -> str | None:
        """Why `latest` is not the newest set: the newer sets it passed over and their verdicts; None if it is."""
        newer = [backup_set for backup_set in self.sets if backup_set.snapshot_at > chosen.snapshot_at]
        if not newer:
            return None
        reasons = [
            f"{backup_set.id} failed its {backup_set.verification.latest.describe()}"
            if backup_set.verification is not None
            else f"{backup_set.id} was never verified"
            for backup_set in reversed(newer)
        ]
        return f"took set {chosen.id}, the newest good set, instead of newer ones: {'; '.join(reasons)}"

    def resolve(self, selector: str) -> BackupSet:
        """The set named `selector`, or the newest verified one for "latest"."""
        if selector == LATEST:
            newest = self.newest_verified
            if newest is None:
                raise SetNotFoundError(
                    "unable to pick the latest set: there is no verified backup set yet",
                    "take one with `make backup-now` (python -m pgbackup backup), then try again",
                )
            return newest
        for backup_set in self.sets:
            if backup_set.id == selector:
                return backup_set
        known = ", ".join(backup_set.id for backup_set in self.sets[-5:]) or "none"
        raise SetNotFoundError(
            f"unable to find backup set {selector!r}: no complete set has that id",
            f"list the sets with `make backups`; the newest are: {known}",
        )


def new_set_id(sets_dir: Path, started_at: datetime) -> str:
    """A fresh id for a set started at `started_at` that no set, partial or not, already uses."""
    base = started_at.strftime("%Y%m%dT%H%M%SZ")
    candidate, suffix = base, 1
    while any((sets_dir / f"{candidate}{ending}").exists() for ending in ("", PARTIAL_SUFFIX, DELETING_SUFFIX)):
        suffix += 1
        candidate = f"{base}-{suffix}"
    return candidate


def scan(sets_dir: Path) -> Catalog:
    """Read every set's manifest and verification record; damaged sets are reported, not hidden."""
    if not sets_dir.is_dir():
        return Catalog(sets=())
    sets: list[BackupSet] = []
    damaged: list[Path] = []
    leftovers: list[Path] = []
    for entry in sorted(sets_dir.iterdir()):
        if not entry.is_dir():
            continue
        if entry.name.endswith((PARTIAL_SUFFIX, DELETING_SUFFIX)):
            leftovers.append(entry)
            continue
        if not SET_ID.match(entry.name):
            continue
        try:
            manifest = Manifest.read(entry)
        except VerificationError as exc:
            logger.warning("damaged set path=%s error=%s", entry, exc.message)
            damaged.append(entry)
            continue
        sets.append(BackupSet(entry.name, entry, manifest, Verification.read(entry)))
    sets.sort(key=lambda backup_set: (backup_set.manifest.started_at, backup_set.id))
    return Catalog(sets=tuple(sets), damaged=tuple(damaged), leftovers=tuple(leftovers))


def remove_leftovers(sets_dir: Path) -> list[str]:
    """Delete what interrupted runs left (`*.partial`, `*.deleting`); call only under the run lock."""
    removed = []
    for leftover in scan(sets_dir).leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
        logger.warning("removed the leftovers of an interrupted run path=%s", leftover)
        removed.append(leftover.name)
    return removed
