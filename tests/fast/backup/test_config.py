"""config.py: defaults, every problem reported at once, _FILE secrets, and the schedule forms."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import pytest
import schedule

from pgbackup.__main__ import main
from pgbackup.cadence import parse_cadence
from pgbackup.config import SPECS, Settings, parse_duration
from pgbackup.errors import ConfigError, ExitCode
from pgbackup.units import byte_size, spell_bytes, spell_seconds


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings.from_env({"BACKUP_DIR": "/tmp"})
    assert settings.target.user == "backup_operator"
    assert settings.target.get("port") == "5432" and settings.target.dbname == "postgres"
    assert settings.target.url is None
    assert settings.cadence.period_seconds == 3600
    assert (
        settings.keep_last == 24
        and settings.keep_daily == 7
        and settings.keep_weekly == 4
        and settings.keep_monthly == 6
    )
    assert settings.status_port == 9187
    assert settings.freshness_grace == 1800
    assert settings.min_free_bytes == 100 * 1024**2
    assert settings.target.password is None and settings.webhook_url is None
    # the drill's RPO limit defaults to what the health check still calls fresh
    assert settings.drill_max_rpo == settings.max_backup_age == 3600 + 1800


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "BACKUP_PGPORT": "70000",
                "BACKUP_SCHEDULE": "every blue moon",
                "BACKUP_TZ": "Mars/Olympus",
                "BACKUP_ON_START": "maybe",
                "BACKUP_KEEP_DAILY": "-1",
                "BACKUP_FRESHNESS_GRACE": "soon",
                "BACKUP_MIN_FREE_BYTES": "lots",
                "BACKUP_WEBHOOK_URL": "ftp://example.com/x?token=hunter2",
                "BACKUP_DIR": "relative/dir",
                "BACKUP_KEEP_DAYS": "7",
            }
        )
    problems = caught.value.problems
    assert len(problems) == 10, problems
    text = str(caught.value)
    for name in (
        "BACKUP_PGPORT",
        "BACKUP_SCHEDULE",
        "BACKUP_TZ",
        "BACKUP_ON_START",
        "BACKUP_KEEP_DAILY",
        "BACKUP_FRESHNESS_GRACE",
        "BACKUP_MIN_FREE_BYTES",
        "BACKUP_WEBHOOK_URL",
        "BACKUP_DIR",
    ):
        assert name in text
    assert "\n  - BACKUP_KEEP_DAYS is not a setting of pgbackup\n    hint: did you mean BACKUP_KEEP_DAILY?" in text
    assert "\n  - BACKUP_PGPORT='70000' is invalid: must be between 1 and 65535" in text
    assert "hunter2" not in text, "a webhook URL may carry a token: never echo it"
    assert "'every 60 minutes', 'every 6 hours' or 'daily at 02:30'" in text


def test_password_and_password_file_are_exclusive(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    with pytest.raises(ConfigError, match="both BACKUP_PGPASSWORD and BACKUP_PGPASSWORD_FILE are set"):
        Settings.from_env({"BACKUP_PGPASSWORD": "x", "BACKUP_PGPASSWORD_FILE": str(secret)})


def test_password_file_is_read_once_without_its_newline(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = Settings.from_env({"BACKUP_PGPASSWORD_FILE": str(secret)})
    assert settings.target.password == "s3cret"
    assert "s3cret" not in repr(settings)


def test_unreadable_password_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(ConfigError, match=f"unable to read BACKUP_PGPASSWORD_FILE={missing}"):
        Settings.from_env({"BACKUP_PGPASSWORD_FILE": str(missing)})


def test_commands_that_never_connect_do_not_need_the_secret(tmp_path: Path) -> None:
    """The drill container mounts no secret; its BACKUP_PGPASSWORD_FILE must not stop it."""
    settings = Settings.from_env({"BACKUP_PGPASSWORD_FILE": str(tmp_path / "absent")}, read_secrets=False)
    assert settings.target.password is None


@pytest.mark.parametrize(
    ("text", "period", "daily_at"),
    [
        ("every 60 minutes", 3600, None),
        ("every 6 hours", 6 * 3600, None),
        ("Every  1 Hour", 3600, None),
        ("every minute", 60, None),
        ("every 90 minutes", 5400, None),
        ("daily at 02:30", 86400, "02:30"),
        ("daily at 7:05", 86400, "07:05"),
    ],
)
def test_schedule_forms(text: str, period: int, daily_at: str | None) -> None:
    cadence = parse_cadence(text)
    assert (cadence.period_seconds, cadence.daily_at) == (period, daily_at)


@pytest.mark.parametrize(
    "text", ["every 0 minutes", "daily at 24:00", "daily at 02:60", "hourly", "every 5 seconds", ""]
)
def test_schedule_forms_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cadence(text)


@pytest.mark.parametrize(
    ("text", "unit", "interval", "at"),
    [
        ("every 15 minutes", "minutes", 15, None),
        ("every 6 hours", "hours", 6, None),
        ("daily at 02:30", "days", 1, time(2, 30)),
    ],
)
def test_schedule_is_installed_on_the_scheduler(text: str, unit: str, interval: int, at: time | None) -> None:
    scheduler = schedule.Scheduler()
    job = parse_cadence(text).install(scheduler, lambda: None, "Europe/Berlin")
    assert (job.unit, job.interval, job.at_time) == (unit, interval, at)
    assert scheduler.idle_seconds is not None and 0 < scheduler.idle_seconds <= 86400
    if at is not None:
        assert str(job.at_time_zone) == "Europe/Berlin"


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("1d", 86400), ("250ms", 0.25)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(spell_seconds(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "hint"), [("90", "hint: write 90s (seconds) or 90ms"), ("soon", "hint: write a number")]
)
def test_durations_without_a_unit_or_number_are_refused(text: str, hint: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert f"\n{hint}" in str(caught.value)


def test_a_bare_number_still_means_seconds_for_a_release(capsys: pytest.CaptureFixture[str]) -> None:
    """The old spelling keeps working (compose/.env files have BACKUP_DRILL_MAX_RTO=600), with a JSON warning line
    that says what to write instead."""
    assert Settings.from_env({"BACKUP_DRILL_MAX_RTO": "600"}).drill_max_rto == 600
    capsys.readouterr()  # where that warning went depends on whether logging was configured before
    assert main(["settings"], environ={"BACKUP_DRILL_MAX_RTO": "600", "BACKUP_FRESHNESS_GRACE": "90"}) == ExitCode.OK
    warnings = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(line["level"], line["logger"], line["msg"]) for line in warnings] == [
        (
            "WARNING",
            "pgbackup.config",
            "BACKUP_FRESHNESS_GRACE=90 without a unit is deprecated and refused from the next release: "
            "write BACKUP_FRESHNESS_GRACE=90s",
        ),
        (
            "WARNING",
            "pgbackup.config",
            "BACKUP_DRILL_MAX_RTO=600 without a unit is deprecated and refused from the next release: "
            "write BACKUP_DRILL_MAX_RTO=10m",
        ),
    ]
    assert set(warnings[0]) == {"ts", "level", "logger", "msg"} and warnings[0]["ts"].endswith("Z")


@pytest.mark.parametrize(
    ("text", "size"), [("1048576", 1048576), ("512MiB", 512 * 1024**2), ("2GiB", 2 * 1024**3), ("7B", 7)]
)
def test_sizes(text: str, size: int) -> None:
    assert byte_size(text) == size
    assert byte_size(spell_bytes(size)) == size


@pytest.mark.parametrize(("text", "hint"), [("100MB", "write MiB"), ("1g", "write GiB"), ("lots", "write bytes")])
def test_decimal_sizes_are_refused_with_the_iec_spelling(text: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BACKUP_MIN_FREE_BYTES": text})
    assert hint in caught.value.problems[0]


def test_every_spec_is_read() -> None:
    """A setting declared but never read would be documented and ignored: each one must change Settings."""
    base = Settings.from_env({})
    changed = {
        "BACKUP_DATABASE_URL": "postgresql://u@db/d",
        "BACKUP_PGHOST": "db",
        "BACKUP_PGPORT": "6543",
        "BACKUP_PGUSER": "u",
        "BACKUP_PGPASSWORD": "p",
        "BACKUP_PGDATABASE": "d",
        "BACKUP_PGSSLMODE": "require",
        "BACKUP_PGSSLROOTCERT": "system",
        "BACKUP_PGCONNECT_TIMEOUT": "3s",
        "BACKUP_CONNECT_RETRY": "5s",
        "BACKUP_DIR": "/srv",
        "BACKUP_SCHEDULE": "every 5 minutes",
        "BACKUP_TZ": "Asia/Tokyo",
        "BACKUP_ON_START": "false",
        "BACKUP_SCRUB_SCHEDULE": "off",
        "BACKUP_SCRUB_RATE": "8MiB",
        "BACKUP_DRILL_SCHEDULE": "daily at 05:00",
        "BACKUP_DATABASES": "a,b",
        "BACKUP_COMPRESS": "gzip:1",
        "BACKUP_LOCK_WAIT_TIMEOUT": "0",
        "BACKUP_KEEP_LAST": "3",
        "BACKUP_KEEP_DAILY": "1",
        "BACKUP_KEEP_WEEKLY": "1",
        "BACKUP_KEEP_MONTHLY": "1",
        "BACKUP_FRESHNESS_GRACE": "1m",
        "BACKUP_MIN_FREE_BYTES": "1KiB",
        "BACKUP_FREE_SPACE_MARGIN": "5",
        "BACKUP_STATUS_PORT": "1",
        "BACKUP_STATUS_BIND": "127.0.0.1",
        "BACKUP_WEBHOOK_URL": "https://h/x",
        "BACKUP_WEBHOOK_TIMEOUT": "2s",
        "BACKUP_RESTORE_JOBS": "3",
        "BACKUP_PG_BIN_DIR": "/",
        "BACKUP_DRILL_MAX_RTO": "5m",
        "BACKUP_DRILL_MAX_RPO": "5m",
        "BACKUP_DRILL_WORK_DIR": "/",
        "BACKUP_DRILL_MEMORY_BUDGET": "1GiB",
        "BACKUP_DRILL_SCRATCH": "disk",
        "BACKUP_DRILL_DISK_DIR": "/scratch",
        "BACKUP_DRILL_USER": "x",
        "BACKUP_LOG_LEVEL": "debug",
    }
    names = {spec.name for spec in SPECS}
    # the offsite settings only count together (a URL needs recipients and credentials): each changes a whole set
    offsite_base = {
        "BACKUP_OFFSITE_URL": "s3://pgstack-backups/a",
        "BACKUP_OFFSITE_ENDPOINT": "https://s3.example.com",
        "BACKUP_OFFSITE_REGION": "eu-west-1",
        "BACKUP_OFFSITE_ACCESS_KEY_ID": "id",
        "BACKUP_OFFSITE_SECRET_ACCESS_KEY": "secret",
        "BACKUP_OFFSITE_RECIPIENTS": "age1" + "q" * 58,
        "BACKUP_OFFSITE_KEEP": "7",
    }
    offsite_changed = {
        "BACKUP_OFFSITE_URL": "s3://pgstack-backups/b",
        "BACKUP_OFFSITE_ENDPOINT": "https://minio.example.com",
        "BACKUP_OFFSITE_REGION": "us-east-2",
        "BACKUP_OFFSITE_ACCESS_KEY_ID": "other-id",
        "BACKUP_OFFSITE_SECRET_ACCESS_KEY": "other-secret",
        "BACKUP_OFFSITE_RECIPIENTS": "age1" + "p" * 58,
        "BACKUP_OFFSITE_KEEP": "3",
    }
    assert set(changed) | set(offsite_changed) == names, "add the new setting to this test"
    for name, value in changed.items():
        assert Settings.from_env({name: value}) != base, f"{name}={value} changed nothing"
    for name, value in offsite_changed.items():
        assert Settings.from_env({**offsite_base, name: value}) != Settings.from_env(offsite_base), f"{name} is unread"
