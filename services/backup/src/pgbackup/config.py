"""Every setting of pgbackup, declared once, read from the environment once, and validated together.

`Settings.from_env(os.environ)` returns a frozen `Settings` or raises `ConfigError` listing *every*
problem, one line each. Nothing else in the package reads the environment. The settings table in
services/backup/README.md is generated from `SPECS` (`python -m pgbackup settings --markdown`), and a test
fails when the two differ.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import pytz

from pgbackup.cadence import Cadence, parse_cadence
from pgbackup.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Spec:
    """One environment variable: its name, its default as text ("" = unset) and a one-line help."""

    name: str
    default: str
    help: str


SPECS: tuple[Spec, ...] = (
    Spec("BACKUP_PGHOST", "localhost", "PostgreSQL host (or Unix socket directory) to back up from"),
    Spec("BACKUP_PGPORT", "5432", "PostgreSQL port, 1-65535"),
    Spec(
        "BACKUP_PGUSER",
        "backup_operator",
        "role to connect as: a member of pg_read_all_data for backups, a superuser for restore",
    ),
    Spec("BACKUP_PGPASSWORD", "", "that role's password (prefer BACKUP_PGPASSWORD_FILE; never both)"),
    Spec(
        "BACKUP_PGPASSWORD_FILE",
        "",
        "file holding the password, e.g. /run/secrets/backup_password; trailing newline stripped",
    ),
    Spec("BACKUP_PGDATABASE", "postgres", "maintenance database for catalog queries, globals and CREATE DATABASE"),
    Spec("BACKUP_PGCONNECT_TIMEOUT", "10s", "timeout of one connection attempt"),
    Spec("BACKUP_CONNECT_RETRY", "60s", "how long the startup check retries a failing connection before giving up"),
    Spec("BACKUP_DIR", "/backups", "directory holding the backup sets, the state file and drill reports"),
    Spec(
        "BACKUP_SCHEDULE",
        "every 60 minutes",
        "when `run` backs up: 'every N minutes', 'every N hours' or 'daily at HH:MM'",
    ),
    Spec("BACKUP_TZ", "UTC", "IANA time zone of 'daily at' and of the daily/weekly/monthly retention buckets"),
    Spec("BACKUP_ON_START", "true", "`run` takes a backup as soon as it starts (true/false)"),
    Spec(
        "BACKUP_DATABASES",
        "",
        "comma-separated databases to dump; empty = every non-template database that allows connections",
    ),
    Spec("BACKUP_COMPRESS", "", "pg_dump --compress value (e.g. gzip:6, zstd:3, lz4, none); empty = pg_dump's default"),
    Spec(
        "BACKUP_LOCK_WAIT_TIMEOUT", "5m", "give up when a table lock is not granted within this time (0 = wait forever)"
    ),
    Spec(
        "BACKUP_KEEP_LAST",
        "24",
        "retention: keep the newest N sets, verified or not (the newest verified set is always kept)",
    ),
    Spec("BACKUP_KEEP_DAILY", "7", "retention: keep the newest verified set of each of the last N days that have one"),
    Spec("BACKUP_KEEP_WEEKLY", "4", "retention: same for N ISO weeks"),
    Spec("BACKUP_KEEP_MONTHLY", "6", "retention: same for N calendar months"),
    Spec(
        "BACKUP_FRESHNESS_GRACE",
        "30m",
        "healthy while the newest verified set is younger than the schedule's period plus this",
    ),
    Spec(
        "BACKUP_MIN_FREE_BYTES",
        "100MiB",
        "never start a backup with less free space than this (units: B, KiB, MiB, GiB, TiB)",
    ),
    Spec(
        "BACKUP_FREE_SPACE_MARGIN",
        "20",
        "percent added to the last set's size for the free-space check before each backup",
    ),
    Spec("BACKUP_STATUS_PORT", "9187", "port of the status server (JSON at /status, Prometheus at /metrics); 0 = off"),
    Spec("BACKUP_STATUS_BIND", "0.0.0.0", "address the status server binds to (the backup network is internal)"),
    Spec("BACKUP_WEBHOOK_URL", "", "http(s) URL that gets a JSON POST when a backup fails; empty = none"),
    Spec("BACKUP_WEBHOOK_TIMEOUT", "10s", "timeout of one webhook POST"),
    Spec("BACKUP_RESTORE_JOBS", "2", "parallel pg_restore jobs for restore and drill, 1-64"),
    Spec("BACKUP_PG_BIN_DIR", "", "directory of pg_dump, pg_restore, psql, initdb, pg_ctl; empty = search PATH"),
    Spec("BACKUP_DRILL_MAX_RTO", "1h", "drill fails when restore-to-verified takes longer"),
    Spec(
        "BACKUP_DRILL_MAX_RPO",
        "",
        "drill fails when the set's snapshot is older; empty = schedule period + freshness grace",
    ),
    Spec(
        "BACKUP_DRILL_WORK_DIR",
        "",
        "where the drill's private server keeps its data; empty = the system temp directory",
    ),
    Spec("BACKUP_DRILL_USER", "", "unprivileged OS user the drill's server runs as when pgbackup runs as root"),
    Spec("BACKUP_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
)
SPEC_NAMES = frozenset(spec.name for spec in SPECS)
_DEFAULTS = {spec.name: spec.default for spec in SPECS}

_DURATION = re.compile(r"^(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^(?P<value>\d+)\s*(?P<unit>B|KiB|MiB|GiB|TiB)?$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}
_COMPRESS = re.compile(r"^(?:\d|(?:gzip|lz4|zstd|none)(?::[a-z0-9=,_-]+)?)$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '30m', '2h', '1d' or '250ms'; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError("is not a duration: use seconds or a number with ms, s, m, h or d (e.g. 90, 30m, 2h)")
    return float(match.group("value")) * _DURATION_UNITS[match.group("unit")]


def parse_size(text: str) -> int:
    """Bytes from '1048576', '512MiB', '2GiB'; ValueError otherwise."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError("is not a size: use bytes or a number with B, KiB, MiB, GiB or TiB (e.g. 512MiB)")
    return int(match.group("value")) * _SIZE_UNITS[match.group("unit")]


@dataclass(frozen=True, slots=True)
class Settings:
    """The validated configuration; build it with `Settings.from_env`. Units: seconds and bytes."""

    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str | None = field(repr=False)
    pg_database: str
    connect_timeout: float
    connect_retry: float
    backup_dir: Path
    cadence: Cadence
    tz: str
    on_start: bool
    databases: tuple[str, ...]
    compress: str | None
    lock_wait_timeout: float
    keep_last: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    freshness_grace: float
    min_free_bytes: int
    free_space_margin: float
    status_port: int
    status_bind: str
    webhook_url: str | None = field(repr=False)
    webhook_timeout: float
    restore_jobs: int
    pg_bin_dir: Path | None
    drill_max_rto: float
    drill_max_rpo: float
    drill_work_dir: Path | None
    drill_user: str | None
    log_level: str

    @property
    def max_backup_age(self) -> float:
        """Seconds after which the newest verified set counts as stale (schedule period + grace)."""
        return self.cadence.period_seconds + self.freshness_grace

    @property
    def sets_dir(self) -> Path:
        return self.backup_dir / "sets"

    @property
    def drills_dir(self) -> Path:
        return self.backup_dir / "drills"

    @property
    def state_file(self) -> Path:
        return self.backup_dir / "state.json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, read_secrets: bool = True) -> Settings:
        """Validate every setting; raise ConfigError listing all problems.

        `read_secrets=False` skips reading BACKUP_PGPASSWORD_FILE, for commands that never connect to the
        source server (drill, list, status, verify, prune, healthcheck): the drill container has no secrets.
        """
        reader = _Reader(environ)
        reader.reject_unknown()
        settings = cls(
            pg_host=reader.text("BACKUP_PGHOST", required=True),
            pg_port=reader.integer("BACKUP_PGPORT", 1, 65535),
            pg_user=reader.text("BACKUP_PGUSER", required=True),
            pg_password=reader.secret("BACKUP_PGPASSWORD", read=read_secrets),
            pg_database=reader.text("BACKUP_PGDATABASE", required=True),
            connect_timeout=reader.duration("BACKUP_PGCONNECT_TIMEOUT", minimum=1.0),
            connect_retry=reader.duration("BACKUP_CONNECT_RETRY", minimum=0.0),
            backup_dir=reader.path("BACKUP_DIR") or Path("/backups"),
            cadence=reader.cadence("BACKUP_SCHEDULE"),
            tz=reader.timezone("BACKUP_TZ"),
            on_start=reader.boolean("BACKUP_ON_START"),
            databases=reader.names("BACKUP_DATABASES"),
            compress=reader.compress("BACKUP_COMPRESS"),
            lock_wait_timeout=reader.duration("BACKUP_LOCK_WAIT_TIMEOUT", minimum=0.0),
            keep_last=reader.integer("BACKUP_KEEP_LAST", 0, 100_000),
            keep_daily=reader.integer("BACKUP_KEEP_DAILY", 0, 100_000),
            keep_weekly=reader.integer("BACKUP_KEEP_WEEKLY", 0, 100_000),
            keep_monthly=reader.integer("BACKUP_KEEP_MONTHLY", 0, 100_000),
            freshness_grace=reader.duration("BACKUP_FRESHNESS_GRACE", minimum=0.0),
            min_free_bytes=reader.size("BACKUP_MIN_FREE_BYTES"),
            free_space_margin=float(reader.integer("BACKUP_FREE_SPACE_MARGIN", 0, 1000)),
            status_port=reader.integer("BACKUP_STATUS_PORT", 0, 65535),
            status_bind=reader.text("BACKUP_STATUS_BIND", required=True),
            webhook_url=reader.url("BACKUP_WEBHOOK_URL"),
            webhook_timeout=reader.duration("BACKUP_WEBHOOK_TIMEOUT", minimum=0.1),
            restore_jobs=reader.integer("BACKUP_RESTORE_JOBS", 1, 64),
            pg_bin_dir=reader.directory("BACKUP_PG_BIN_DIR"),
            drill_max_rto=reader.duration("BACKUP_DRILL_MAX_RTO", minimum=0.001),
            drill_max_rpo=reader.duration("BACKUP_DRILL_MAX_RPO", minimum=0.001, optional=True),
            drill_work_dir=reader.directory("BACKUP_DRILL_WORK_DIR"),
            drill_user=reader.text("BACKUP_DRILL_USER") or None,
            log_level=reader.choice("BACKUP_LOG_LEVEL", _LOG_LEVELS),
        )
        if reader.problems:
            raise ConfigError(reader.problems)
        if settings.drill_max_rpo <= 0:
            # derived default: a drill of a set the schedule still counts as fresh passes
            settings = replace(settings, drill_max_rpo=settings.max_backup_age)
        return settings


class _Reader:
    """Reads one variable at a time, records a problem instead of raising, and returns a placeholder."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def reject_unknown(self) -> None:
        for name in sorted(key for key in self.environ if key.startswith("BACKUP_") and key not in SPEC_NAMES):
            close = difflib.get_close_matches(name, sorted(SPEC_NAMES), n=1)
            hint = f": did you mean {close[0]}?" if close else ": see the settings table in services/backup/README.md"
            self.problems.append(f"{name} is not a setting of pgbackup{hint}")

    def raw(self, name: str) -> str:
        return self.environ.get(name, _DEFAULTS[name]).strip()

    def fail(self, name: str, value: str, reason: str) -> None:
        self.problems.append(f"{name}={value!r} {reason}")

    def text(self, name: str, *, required: bool = False) -> str:
        value = self.raw(name)
        if required and not value:
            self.problems.append(f"{name} is empty: set it (default {_DEFAULTS[name]!r})")
        return value

    def integer(self, name: str, minimum: int, maximum: int) -> int:
        value = self.raw(name)
        try:
            number = int(value)
        except ValueError:
            self.fail(name, value, f"is not a whole number: use {minimum} to {maximum}")
            return minimum
        if not minimum <= number <= maximum:
            self.fail(name, value, f"is out of range: use {minimum} to {maximum}")
        return number

    def boolean(self, name: str) -> bool:
        value = self.raw(name).lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        self.fail(name, value, "is not a boolean: use true or false")
        return False

    def duration(self, name: str, *, minimum: float, optional: bool = False) -> float:
        value = self.raw(name)
        if optional and not value:
            return 0.0
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(name, value, str(exc))
            return minimum
        if seconds < minimum:
            self.fail(name, value, f"is too short: use at least {minimum:g} seconds")
        return seconds

    def size(self, name: str) -> int:
        value = self.raw(name)
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(name, value, str(exc))
            return 0

    def path(self, name: str) -> Path | None:
        value = self.raw(name)
        if not value:
            return None
        if not value.startswith("/"):
            self.fail(name, value, "is not an absolute path: use e.g. /backups")
        return Path(value)

    def directory(self, name: str) -> Path | None:
        path = self.path(name)
        if path is not None and not path.is_dir():
            self.fail(name, str(path), "is not an existing directory")
        return path

    def cadence(self, name: str) -> Cadence:
        value = self.raw(name)
        try:
            return parse_cadence(value)
        except ValueError as exc:
            self.fail(name, value, str(exc))
            return Cadence(text=value, period_seconds=3600)

    def timezone(self, name: str) -> str:
        value = self.raw(name)
        try:
            pytz.timezone(value)
        except pytz.UnknownTimeZoneError:
            self.fail(name, value, "is not an IANA time zone: use e.g. UTC or Europe/Berlin")
            return "UTC"
        return value

    def names(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        names = tuple(part.strip() for part in value.split(",") if part.strip())
        if len(set(names)) != len(names):
            self.fail(name, value, "names a database twice: list each once")
        for database in names:
            if len(database.encode()) > 63:
                self.fail(name, value, f"has {database!r}, longer than PostgreSQL's 63-byte limit on names")
        return names

    def compress(self, name: str) -> str | None:
        value = self.raw(name)
        if not value:
            return None
        if not _COMPRESS.match(value):
            self.fail(name, value, "is not a pg_dump --compress value: use e.g. gzip:6, zstd:3, lz4 or none")
        return value

    def url(self, name: str) -> str | None:
        value = self.raw(name)
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # never echo the URL: it may carry a token
            self.problems.append(f"{name} is not an http(s) URL with a host: use e.g. https://hooks.example.com/backup")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name).upper()
        if value not in choices:
            self.fail(name, value, f"is not one of {', '.join(choices)}")
        return value

    def secret(self, name: str, *, read: bool) -> str | None:
        file_name = f"{name}_FILE"
        plain = self.environ.get(name, "")
        path = self.environ.get(file_name, "").strip()
        if plain and path:
            self.problems.append(f"both {name} and {file_name} are set (but are exclusive): keep only {file_name}")
            return None
        if plain:
            return plain
        if not path or not read:
            return None
        try:
            return Path(path).read_text().rstrip("\r\n")
        except OSError as exc:
            self.problems.append(f"unable to read {file_name}={path}: {exc.strerror}: mount the secret or fix its mode")
            return None


def settings_table() -> str:
    """The Markdown table of every setting, as generated into services/backup/README.md."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for spec in SPECS:
        default = f"`{spec.default}`" if spec.default else "(empty)"
        lines.append(f"| `{spec.name}` | {default} | {spec.help.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
