"""Waiting for a condition, with a deadline: the one polling helper of the tests and the dev tools (no sleeps to
wait for something; poll a predicate through `wait_until`)."""

from __future__ import annotations

import time
from collections.abc import Callable


class WaitTimeout(TimeoutError):
    """A condition did not come true in time, or what it waited on died; the message names it and the last
    state seen."""


def wait_until(
    predicate: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str,
    describe: Callable[[], str] | None = None,
    died: Callable[[], str | None] | None = None,
) -> object:
    """Poll `predicate` until it returns something truthy and return that; raise WaitTimeout naming
    `what` (and `describe()`, the last observed state) after `timeout` seconds. Exceptions raised by the
    predicate count as "not yet" and the last one is reported. `died()`, when given, returns the reason the
    awaited thing is gone (a process that exited), or None: a reason stops the wait at once."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # reported below if the condition never comes true
            last_error = exc
        reason = died() if died else None
        if reason is not None:
            raise WaitTimeout(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            state = describe() if describe else ""
            cause = f"; last error: {last_error!r}" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{cause} {state}".rstrip())
        time.sleep(interval)
