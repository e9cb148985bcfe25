"""Durable file operations: atomic JSON writes, fsync, checksums, free space and advisory locks."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pgbackup.errors import LockedError

CHUNK = 1024 * 1024


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes renames and unlinks in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_cache(path: Path) -> None:
    """Ask the kernel to forget a file's cached pages, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def sha256_file(path: Path, on_read: Callable[[int], None] | None = None) -> str:
    """The file's sha256; `on_read(n)` after each chunk read (a scrub's rate limit sleeps there)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            if on_read is not None:
                on_read(len(chunk))
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` so that a reader sees the old content or the new one, never a torn file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w") as stream:
            json.dump(data, stream, indent=2, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def read_json(path: Path) -> Any:
    with path.open() as stream:
        return json.load(stream)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


@contextmanager
def exclusive_lock(lock_file: Path, *, what: str) -> Iterator[None]:
    """Hold an exclusive flock on `lock_file` or raise LockedError at once (runs never overlap).

    The kernel releases the lock when the process dies, even by SIGKILL, so a crash never leaves it held.
    """
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"unable to start {what}: another backup or prune holds {lock_file} (pid {holder})",
                "wait for it to finish (see `python -m pgbackup status`), then try again",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextmanager
def shared_lock(path: Path) -> Iterator[None]:
    """Hold a shared flock on `path` (a set's manifest) while reading the set: prune skips it meanwhile."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextmanager
def record_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive flock on a set's directory (its inode outlives the atomic replacements of the files in
    it) for a read-modify-write of its verification record."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def try_exclusive(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path`, or None when someone holds a shared one (set in use)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd
