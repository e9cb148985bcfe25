"""Stopping a child process the way the dev tools and the tests do: SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import subprocess

GRACE_S = 10.0


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], grace_s: float = GRACE_S) -> int:
    """SIGTERM `process` if it still runs, SIGKILL it after `grace_s`; its exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace_s)
    return int(process.returncode)
