"""Controls for the attack snapshot (tests/security/state.py): each probe sees the change it is there for, made by
hand in a session of its own. Without these, "nothing changed" could mean "nothing was looked at"."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from tests.helpers import wait_until
from tests.security.state import capture_state


@pytest.fixture
def checker(pg: NativePostgres) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def side(pg: NativePostgres) -> Iterator[psycopg.Connection]:
    """A superuser session of its own, as an attack's pooled session would be."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        yield conn


def differing(checker: psycopg.Connection, change: Callable[[], None]) -> set[str]:
    before = capture_state(checker)
    change()

    def seen() -> bool:
        return bool(before.differences(capture_state(checker)))

    wait_until(seen, timeout=10, what="the snapshot to see the change")  # statistics are flushed within a second
    return {line.split(":")[0] for line in before.differences(capture_state(checker))}


def test_a_temporary_table_of_another_session_is_seen(checker: psycopg.Connection, side: psycopg.Connection) -> None:
    assert "temp_objects" in differing(checker, lambda: side.execute("CREATE TEMP TABLE attack_residue (x int)"))


def test_a_table_lock_held_by_another_session_is_seen(checker: psycopg.Connection, pg: NativePostgres) -> None:
    with psycopg.connect(pg.dsn()) as holder:  # a transaction left open, as a poisoned session would
        assert "locks" in differing(checker, lambda: holder.execute("LOCK TABLE shop.orders IN SHARE MODE"))
        holder.rollback()


def test_a_session_advisory_lock_is_seen(checker: psycopg.Connection, side: psycopg.Connection) -> None:
    changed = differing(checker, lambda: side.execute("SELECT pg_advisory_lock(90210)"))
    side.execute("SELECT pg_advisory_unlock_all()")
    assert {"advisory_locks", "locks"} <= changed


def test_a_statistics_reset_is_seen(checker: psycopg.Connection, side: psycopg.Connection) -> None:
    assert "statistics" in differing(checker, lambda: side.execute("SELECT pg_stat_reset()"))


def test_a_manual_analyze_is_seen(checker: psycopg.Connection, side: psycopg.Connection) -> None:
    assert "statistics" in differing(checker, lambda: side.execute("ANALYZE shop.customers"))


def test_a_database_connection_limit_is_seen(checker: psycopg.Connection, side: psycopg.Connection) -> None:
    try:
        assert "databases" in differing(checker, lambda: side.execute("ALTER DATABASE app CONNECTION LIMIT 77"))
    finally:
        side.execute("ALTER DATABASE app CONNECTION LIMIT -1")
