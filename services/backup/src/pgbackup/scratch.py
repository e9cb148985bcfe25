"""Where the restore drill's private server keeps its data: memory or disk-backed scratch space.

The restored size of a set is estimated from its manifest: the databases' sizes recorded at dump time
(`pg_database_size` in the dump's snapshot), or, for a set made before sizes were recorded, `DUMP_FACTOR` times its
dump files (custom-format archives are compressed); plus as much again for the WAL the restore writes, at most the
private server's `max_wal_size`, plus `CLUSTER_BYTES` for the empty cluster initdb makes.

BACKUP_DRILL_SCRATCH=auto puts the data in memory (BACKUP_DRILL_WORK_DIR, a tmpfs in the stack) when the estimate
fits both BACKUP_DRILL_MEMORY_BUDGET and the free space there, and on disk (BACKUP_DRILL_DISK_DIR) otherwise;
`memory` or `disk` forces one. Either way the chosen directory must have room for the estimate.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pgbackup.config import Settings
from pgbackup.errors import ToolError
from pgbackup.manifest import Manifest
from pgbackup.units import spell_bytes

DUMP_FACTOR = 5
"""Restored bytes per archive byte, for sets without recorded database sizes (pg_dump -Fc compresses 3 to 10 times)."""
WAL_BYTES_LIMIT = 4 << 30
"""The private server's max_wal_size (sandbox.SERVER_SETTINGS): the most WAL a restore keeps beside the data."""
CLUSTER_BYTES = 64 << 20
"""An empty cluster (initdb: catalogs, template databases, the first WAL segments)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    bytes: int
    basis: str  # how it was computed, for the report


@dataclass(frozen=True, slots=True)
class Scratch:
    """The drill's choice: `kind` memory or disk, the directory, and the numbers behind it."""

    kind: str
    directory: Path
    estimate: Estimate
    budget_bytes: int
    free_bytes: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "directory": str(self.directory),
            "estimated_bytes": self.estimate.bytes,
            "estimate_basis": self.estimate.basis,
            "memory_budget_bytes": self.budget_bytes,
            "free_bytes": self.free_bytes,
            "reason": self.reason,
        }


def human_bytes(value: int) -> str:
    """1.5 GiB, 300.0 MiB, 12 KiB: for messages (settings are spelled exactly, with spell_bytes)."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def estimate_restored_bytes(manifest: Manifest) -> Estimate:
    """The bytes a restore of `manifest`'s set needs: data, WAL beside it, the empty cluster."""
    sizes = [database.size_bytes for database in manifest.databases]
    if sizes and all(size is not None for size in sizes):
        data = sum(size for size in sizes if size is not None)
        basis = "database sizes at dump time"
    else:
        data = DUMP_FACTOR * manifest.bytes
        basis = f"{DUMP_FACTOR} x the dump files (the set records no database sizes)"
    return Estimate(data + min(data, WAL_BYTES_LIMIT) + CLUSTER_BYTES, f"{basis}, plus WAL and an empty cluster")


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged user may still write under `directory` (0 when it does not exist)."""
    try:
        stats = os.statvfs(directory)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize


def choose_scratch(settings: Settings, manifest: Manifest) -> Scratch:
    """Memory or disk for a drill of `manifest`'s set; raises ToolError (with a hint) when neither can hold it."""
    estimate = estimate_restored_bytes(manifest)
    budget = settings.drill_memory_budget
    memory_dir = settings.drill_work_dir or Path(tempfile.gettempdir())
    memory_free = free_bytes(memory_dir)
    wanted = f"estimated {human_bytes(estimate.bytes)} ({estimate.basis})"
    if settings.drill_scratch == "memory":
        kind, reason = "memory", "BACKUP_DRILL_SCRATCH=memory"
    elif settings.drill_scratch == "disk":
        kind, reason = "disk", "BACKUP_DRILL_SCRATCH=disk"
    elif estimate.bytes <= min(budget, memory_free):
        kind, reason = "memory", f"{wanted} fits the memory budget of {human_bytes(budget)}"
    elif estimate.bytes > budget:
        kind, reason = "disk", f"{wanted} is over the memory budget of {human_bytes(budget)}"
    else:
        kind, reason = "disk", f"{wanted} is over the {human_bytes(memory_free)} free in {memory_dir}"
    if kind == "memory":
        return _checked(Scratch(kind, memory_dir, estimate, budget, memory_free, reason))
    if settings.drill_disk_dir is None:
        raise ToolError(
            f"unable to drill on disk: {reason}, and BACKUP_DRILL_DISK_DIR names no disk-backed scratch directory",
            "run `make restore-drill`, which gives the drill a scratch volume and removes it afterwards",
            f"or raise BACKUP_DRILL_MEMORY_BUDGET (now {spell_bytes(budget)}) if the drill's memory can hold the set",
        )
    directory = settings.drill_disk_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolError(
            f"unable to use the drill's disk scratch directory BACKUP_DRILL_DISK_DIR={directory}: {exc}",
            "mount a writable volume there (`make restore-drill` does)",
        ) from None
    return _checked(Scratch(kind, directory, estimate, budget, free_bytes(directory), reason))


def _checked(scratch: Scratch) -> Scratch:
    if not os.access(scratch.directory, os.W_OK | os.X_OK):
        raise ToolError(
            f"unable to drill in {scratch.kind} ({scratch.reason}): {scratch.directory} is not writable",
            "`make restore-drill` mounts a scratch volume at /drill-scratch for the run; "
            "`ops/compose.sh run restore-drill` alone does not",
        )
    if scratch.estimate.bytes > scratch.free_bytes:
        setting = "BACKUP_DRILL_WORK_DIR" if scratch.kind == "memory" else "BACKUP_DRILL_DISK_DIR"
        raise ToolError(
            f"unable to drill in {scratch.kind} ({scratch.reason}): {scratch.directory} has "
            f"{human_bytes(scratch.free_bytes)} free, the restore needs about {human_bytes(scratch.estimate.bytes)}",
            f"give {setting} more room, or "
            + ("let the drill go to disk (BACKUP_DRILL_SCRATCH=auto)" if scratch.kind == "memory" else "free space"),
        )
    return scratch


__all__ = ["Estimate", "Scratch", "choose_scratch", "estimate_restored_bytes", "free_bytes"]
