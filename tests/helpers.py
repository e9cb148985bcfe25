"""Small helpers every tier uses. No sleeps in tests: wait for a condition, with a deadline (`wait_until`, which
lives in devtools/wait.py so that the benchmarks and ops/ poll the same way)."""

from __future__ import annotations

from devtools.wait import WaitTimeout, wait_until

__all__ = ["WaitTimeout", "wait_until"]
