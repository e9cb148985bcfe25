"""Health is freshness (and room for the next set), read from the volume only; `healthcheck` exits 0 or 1."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pgbackup.__main__ import main
from pgbackup.catalog import scan
from pgbackup.config import Settings
from pgbackup.health import assess
from pgbackup.state import State, update_state
from tests.fast.backup.helpers import FakeClock, write_fake_set


def health_settings(backup_dir: Path, **overrides: str) -> dict[str, str]:
    return {
        "BACKUP_DIR": str(backup_dir),
        "BACKUP_SCHEDULE": "every 60 minutes",
        "BACKUP_FRESHNESS_GRACE": "30m",
        "BACKUP_MIN_FREE_BYTES": "1KiB",
        **overrides,
    }


def healthcheck(env: dict[str, str], clock: FakeClock) -> int:
    return main(["healthcheck"], environ=env, clock=clock)


def test_fresh_then_stale(tmp_path: Path, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    env = health_settings(tmp_path)
    set_id = write_fake_set(Path(tmp_path) / "sets", fake_clock.now())
    fake_clock.advance(timedelta(minutes=89))
    assert healthcheck(env, fake_clock) == 0
    assert f"newest verified set {set_id}" in capsys.readouterr().out
    fake_clock.advance(timedelta(minutes=2))
    assert healthcheck(env, fake_clock) == 1
    assert f"the newest verified set {set_id} is 5460 s old, over the 5400 s" in capsys.readouterr().out


def test_an_unverified_newer_set_does_not_count(tmp_path: Path, fake_clock: FakeClock) -> None:
    env = health_settings(tmp_path)
    write_fake_set(tmp_path / "sets", fake_clock.now())
    fake_clock.advance(timedelta(hours=2))
    write_fake_set(tmp_path / "sets", fake_clock.now(), verified=False)
    assert healthcheck(env, fake_clock) == 1


def test_no_set_is_healthy_until_the_first_one_is_due(tmp_path: Path, fake_clock: FakeClock) -> None:
    env = health_settings(tmp_path)
    assert healthcheck(env, fake_clock) == 1, "no state at all: the sidecar never ran on this volume"
    update_state(tmp_path / "state.json", fake_clock, lambda state: None)
    fake_clock.advance(timedelta(minutes=80))
    assert healthcheck(env, fake_clock) == 0
    fake_clock.advance(timedelta(minutes=11))
    assert healthcheck(env, fake_clock) == 1


def test_a_restart_does_not_reset_the_waiting_time(tmp_path: Path, fake_clock: FakeClock) -> None:
    update_state(tmp_path / "state.json", fake_clock, lambda state: None)
    first = update_state(tmp_path / "state.json", fake_clock, lambda state: None).initialized_at
    fake_clock.advance(timedelta(hours=5))
    state = update_state(tmp_path / "state.json", fake_clock, lambda state: None)
    assert state.initialized_at == first


def test_not_enough_room_for_the_next_set_is_unhealthy(tmp_path: Path, fake_clock: FakeClock) -> None:
    write_fake_set(tmp_path / "sets", fake_clock.now())
    settings = Settings.from_env(health_settings(tmp_path))
    catalog = scan(settings.sets_dir)
    state = State(initialized_at=fake_clock.now())
    assert assess(settings, catalog, state, 10**9, fake_clock).healthy
    health = assess(settings, catalog, state, 1000, fake_clock)
    assert not health.healthy
    assert health.reasons == (f"1000 bytes free in {tmp_path}, the next set needs 1024",)


def test_the_grace_and_period_come_from_the_schedule(tmp_path: Path, fake_clock: FakeClock) -> None:
    env = health_settings(tmp_path, BACKUP_SCHEDULE="daily at 02:30", BACKUP_FRESHNESS_GRACE="6h")
    write_fake_set(tmp_path / "sets", fake_clock.now())
    fake_clock.advance(timedelta(hours=29, minutes=59))
    assert healthcheck(env, fake_clock) == 0
    fake_clock.advance(timedelta(minutes=2))
    assert healthcheck(env, fake_clock) == 1


def test_a_config_error_is_unhealthy_not_exit_2_or_3(tmp_path: Path, fake_clock: FakeClock) -> None:
    """Docker reserves 2; every failure of the health check is 1."""
    assert healthcheck(health_settings(tmp_path, BACKUP_SCHEDULE="sometimes"), fake_clock) == 1
