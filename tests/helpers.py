"""Small helpers every tier uses. No sleeps in tests: wait for a condition, with a deadline (`wait_until`, which
lives in devtools/wait.py so that the benchmarks and ops/ poll the same way)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.wait import WaitTimeout, wait_until

__all__ = ["WaitTimeout", "read_only", "wait_until"]


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a directory) read-only even for root, whom mode bits do not stop: a read-only bind
    mount of it onto itself, undone afterwards. Bind mounts made of it before (a container's) are not affected.
    Needs root, as in CI."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)
