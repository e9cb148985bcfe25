"""When ordinary clients hold every connection slot, the roles that must still get in do: the backup
operator through `reserved_connections` (pg_use_reserved_connections), the superuser through
`superuser_reserved_connections`. Ordinary clients get PostgreSQL's clear refusal, and the slots come
back when the hogs leave."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest

from tests.fixtures.stack import Stack


@contextlib.contextmanager
def every_slot_taken(stack: Stack) -> Iterator[list[psycopg.Connection]]:
    """Open app_owner connections until PostgreSQL refuses the next one; close them all afterwards."""
    held: list[psycopg.Connection] = []
    try:
        while len(held) < 200:  # bounded: max_connections is 100
            try:
                held.append(psycopg.connect(stack.dsn("app_owner"), autocommit=True))
            except psycopg.OperationalError as exc:
                assert "remaining connection slots are reserved" in str(exc), exc
                break
        else:
            pytest.fail("PostgreSQL accepted 200 connections: max_connections is not enforced")
        yield held
    finally:
        for conn in held:
            conn.close()


@pytest.fixture
def hogs(stack: Stack) -> Iterator[list[psycopg.Connection]]:
    with every_slot_taken(stack) as held:
        yield held


def test_reserved_slots_keep_backup_and_superuser_in(stack: Stack, hogs: list[psycopg.Connection]) -> None:
    assert len(hogs) > 50, "the mcp and backup pools should not hold most of the slots"
    with pytest.raises(psycopg.OperationalError, match="remaining connection slots are reserved"):
        psycopg.connect(stack.dsn("mcp_reader"))
    with psycopg.connect(stack.dsn("backup_operator")) as conn:
        assert conn.execute("SELECT count(*) FROM shop.orders").fetchone() == (stack.demo_orders,)
    with psycopg.connect(stack.dsn("postgres")) as conn:
        used = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()
        assert used is not None and used[0] >= len(hogs)


def test_slots_come_back_when_the_hogs_leave(stack: Stack) -> None:
    """On its own, whatever ran before: every slot taken, an ordinary client refused; the hogs leave, it gets in."""
    with every_slot_taken(stack):
        with pytest.raises(psycopg.OperationalError, match="remaining connection slots are reserved"):
            psycopg.connect(stack.dsn("mcp_reader"))
    with psycopg.connect(stack.dsn("mcp_reader")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
