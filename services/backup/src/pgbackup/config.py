"""Every setting of pgbackup, declared once in `SPECS`: name, field, parser with its allowed range, default,
help and how the Compose stack passes it. Read from the environment once, and validated together.

`Settings.from_env(os.environ)` returns a frozen `Settings` or raises `ConfigError` listing *every* problem
(exit status 3), an unknown `BACKUP_*` variable included (with the nearest name). Nothing else in the package
reads the environment. The README table and the Compose pass-through list are generated from `SPECS`
(`python -m pgbackup settings --update FILE...`), and tests fail when either differs. The duration and size
syntax and the rest of the conventions shared with pgmcp: docs/conventions.md.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytz

from pgbackup.cadence import Cadence, parse_cadence
from pgbackup.errors import ConfigError
from pgbackup.units import BareNumber, byte_size, seconds, spell_seconds

logger = logging.getLogger(__name__)

Parser = Callable[[str], Any]
Compose = Literal["pass", "stack"]


@dataclass(frozen=True, slots=True)
class Spec:
    """One environment variable. `parse` turns its (stripped) text into the field's value or raises ValueError
    (reason, then `hint:` lines); `allowed` says what it accepts, for the README. `compose`: `pass` from
    compose/.env with this default (the generated block), `stack` fixed by compose.yaml itself or not passed."""

    name: str
    field: str
    parse: Parser
    allowed: str
    default: str
    help: str
    compose: Compose = "pass"
    secret_file: bool = False


def _text(required: bool) -> Parser:
    def parse(text: str) -> str:
        if required and not text:
            raise ValueError("must not be empty\nhint: set it, or unset it for the default")
        return text

    return parse


def _whole(low: int, high: int) -> Parser:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"not a whole number\nhint: use {low} to {high}") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def _duration(minimum: float, *, empty_means: float | None = None) -> Parser:
    def parse(text: str) -> float:
        if not text and empty_means is not None:
            return empty_means
        value = seconds(text)
        if value < minimum:
            raise ValueError(f"too short\nhint: use at least {spell_seconds(minimum)}")
        return value

    return parse


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean\nhint: use true or false")


def _path(must_exist: bool) -> Parser:
    def parse(text: str) -> Path | None:
        if not text:
            return None
        if not text.startswith("/"):
            raise ValueError("not an absolute path\nhint: use e.g. /backups")
        if must_exist and not Path(text).is_dir():
            raise ValueError("not an existing directory")
        return Path(text)

    return parse


def _cadence(text: str) -> Cadence:
    return parse_cadence(text)


def _timezone(text: str) -> str:
    try:
        pytz.timezone(text)
    except pytz.UnknownTimeZoneError:
        raise ValueError("not an IANA time zone\nhint: use e.g. UTC or Europe/Berlin") from None
    return text


def _databases(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if len(set(names)) != len(names):
        raise ValueError("names a database twice\nhint: list each once")
    for database in names:
        if len(database.encode()) > 63:
            raise ValueError(f"has {database!r}, longer than PostgreSQL's 63-byte limit on names")
    return names


_COMPRESS = re.compile(r"^(?:\d|(?:gzip|lz4|zstd|none)(?::[a-z0-9=,_-]+)?)$")


def _compress(text: str) -> str | None:
    if text and not _COMPRESS.match(text):
        raise ValueError("not a pg_dump --compress value\nhint: use e.g. gzip:6, zstd:3, lz4 or none")
    return text or None


def _url(text: str) -> str | None:
    parts = urlsplit(text)
    if text and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ValueError("not an http(s) URL with a host\nhint: use e.g. https://hooks.example.com/backup")
    return text or None


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(text: str) -> str:
    if text.upper() not in _LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
    return text.upper()


def _size(text: str) -> int:
    return byte_size(text)


_ANY_TEXT = "text"
_HOURLY = "every 60 minutes"

SPECS: tuple[Spec, ...] = (
    Spec(
        "BACKUP_PGHOST",
        "pg_host",
        _text(True),
        "a host, address or socket directory",
        "localhost",
        "PostgreSQL host (or Unix socket directory) to back up from",
        "stack",
    ),
    Spec("BACKUP_PGPORT", "pg_port", _whole(1, 65535), "1 to 65535", "5432", "PostgreSQL port", "stack"),
    Spec(
        "BACKUP_PGUSER",
        "pg_user",
        _text(True),
        "a role name",
        "backup_operator",
        "role to connect as: a member of pg_read_all_data for backups, a superuser for restore",
        "stack",
    ),
    Spec(
        "BACKUP_PGPASSWORD",
        "pg_password",
        _text(False),
        _ANY_TEXT,
        "",
        "that role's password; prefer `BACKUP_PGPASSWORD_FILE` (a secret file, trailing newline stripped)",
        "stack",
        secret_file=True,
    ),
    Spec(
        "BACKUP_PGDATABASE",
        "pg_database",
        _text(True),
        "a database name",
        "postgres",
        "maintenance database for catalog queries, globals and CREATE DATABASE",
        "stack",
    ),
    Spec(
        "BACKUP_PGCONNECT_TIMEOUT",
        "connect_timeout",
        _duration(1.0),
        "1s or more",
        "10s",
        "timeout of one connection attempt (libpq counts whole seconds)",
        "stack",
    ),
    Spec(
        "BACKUP_CONNECT_RETRY",
        "connect_retry",
        _duration(0.0),
        "0 or more",
        "60s",
        "how long the startup check retries a failing connection before exiting with status 5",
        "stack",
    ),
    Spec(
        "BACKUP_DIR",
        "backup_dir",
        _path(False),
        "an absolute path",
        "/backups",
        "directory holding the backup sets, the state file and drill reports",
        "stack",
    ),
    Spec(
        "BACKUP_SCHEDULE",
        "cadence",
        _cadence,
        "`every N minutes`, `every N hours`, `daily at HH:MM`",
        _HOURLY,
        "when `run` backs up: a schedule, not a duration, so it keeps its own words",
    ),
    Spec(
        "BACKUP_TZ",
        "tz",
        _timezone,
        "an IANA time zone",
        "UTC",
        "time zone of 'daily at' and of the daily/weekly/monthly retention buckets",
    ),
    Spec("BACKUP_ON_START", "on_start", _flag, "true, false", "true", "`run` takes a backup as soon as it starts"),
    Spec(
        "BACKUP_DATABASES",
        "databases",
        _databases,
        "database names, comma-separated",
        "",
        "databases to dump; empty = every non-template database that allows connections",
    ),
    Spec(
        "BACKUP_COMPRESS",
        "compress",
        _compress,
        "a pg_dump --compress value",
        "",
        "pg_dump --compress value (e.g. gzip:6, zstd:3, lz4, none); empty = pg_dump's default",
    ),
    Spec(
        "BACKUP_LOCK_WAIT_TIMEOUT",
        "lock_wait_timeout",
        _duration(0.0),
        "0 or more",
        "5m",
        "give up when a table lock is not granted within this time (0 = wait forever)",
    ),
    Spec(
        "BACKUP_KEEP_LAST",
        "keep_last",
        _whole(0, 100_000),
        "0 to 100000",
        "24",
        "retention: keep the newest N sets, verified or not (the newest verified set is always kept)",
    ),
    Spec(
        "BACKUP_KEEP_DAILY",
        "keep_daily",
        _whole(0, 100_000),
        "0 to 100000",
        "7",
        "retention: keep the newest verified set of each of the last N days that have one",
    ),
    Spec(
        "BACKUP_KEEP_WEEKLY", "keep_weekly", _whole(0, 100_000), "0 to 100000", "4", "retention: same for N ISO weeks"
    ),
    Spec(
        "BACKUP_KEEP_MONTHLY",
        "keep_monthly",
        _whole(0, 100_000),
        "0 to 100000",
        "6",
        "retention: same for N calendar months",
    ),
    Spec(
        "BACKUP_FRESHNESS_GRACE",
        "freshness_grace",
        _duration(0.0),
        "0 or more",
        "30m",
        "healthy while the newest verified set is younger than the schedule's period plus this",
    ),
    Spec(
        "BACKUP_MIN_FREE_BYTES",
        "min_free_bytes",
        _size,
        "bytes, or KiB, MiB, GiB, TiB",
        "100MiB",
        "never start a backup with less free space than this",
    ),
    Spec(
        "BACKUP_FREE_SPACE_MARGIN",
        "free_space_margin",
        _whole(0, 1000),
        "0 to 1000",
        "20",
        "percent added to the last set's size for the free-space check before each backup",
    ),
    Spec(
        "BACKUP_STATUS_PORT",
        "status_port",
        _whole(0, 65535),
        "0 to 65535",
        "9187",
        "port of the status server (JSON at /status, Prometheus at /metrics); 0 = off",
        "stack",
    ),
    Spec(
        "BACKUP_STATUS_BIND",
        "status_bind",
        _text(True),
        "an address",
        "0.0.0.0",
        "address the status server binds to (the backup network is internal)",
        "stack",
    ),
    Spec(
        "BACKUP_WEBHOOK_URL",
        "webhook_url",
        _url,
        "an http(s) URL",
        "",
        "URL that gets a JSON POST when a backup fails; empty = none",
    ),
    Spec(
        "BACKUP_WEBHOOK_TIMEOUT",
        "webhook_timeout",
        _duration(0.1),
        "100ms or more",
        "10s",
        "timeout of one webhook POST",
    ),
    Spec(
        "BACKUP_RESTORE_JOBS",
        "restore_jobs",
        _whole(1, 64),
        "1 to 64",
        "2",
        "parallel pg_restore jobs for restore and drill",
    ),
    Spec(
        "BACKUP_PG_BIN_DIR",
        "pg_bin_dir",
        _path(True),
        "an existing directory",
        "",
        "directory of pg_dump, pg_restore, psql, initdb, pg_ctl; empty = search PATH",
        "stack",
    ),
    Spec(
        "BACKUP_DRILL_MAX_RTO",
        "drill_max_rto",
        _duration(0.001),
        "1ms or more",
        "1h",
        "drill fails when restore-to-verified takes longer",
    ),
    Spec(
        "BACKUP_DRILL_MAX_RPO",
        "drill_max_rpo",
        _duration(0.001, empty_means=0.0),
        "1ms or more",
        "",
        "drill fails when the set's snapshot is older; empty = schedule period + freshness grace",
    ),
    Spec(
        "BACKUP_DRILL_WORK_DIR",
        "drill_work_dir",
        _path(True),
        "an existing directory",
        "",
        "where the drill's private server keeps its data; empty = the system temp directory",
        "stack",
    ),
    Spec(
        "BACKUP_DRILL_USER",
        "drill_user",
        _text(False),
        "an OS user name",
        "",
        "unprivileged OS user the drill's server runs as when pgbackup runs as root",
        "stack",
    ),
    Spec(
        "BACKUP_LOG_LEVEL", "log_level", _log_level, ", ".join(_LOG_LEVELS), "INFO", "log level (logs are JSON lines)"
    ),
)
SPEC_NAMES = frozenset(
    name for spec in SPECS for name in ((spec.name, f"{spec.name}_FILE") if spec.secret_file else (spec.name,))
)


def parse_duration(text: str) -> float:
    """Seconds from `90s`, `30m`, `2h`, `1d` or `250ms` (`0` needs no unit); ValueError otherwise."""
    return seconds(text)


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
        A duration written without a unit still means seconds, for this release, and logs what to write.
        """
        problems = unknown_variables(environ)
        values: dict[str, Any] = {}
        for spec in SPECS:
            if spec.secret_file:
                values[spec.field] = _secret(spec.name, environ, read_secrets, problems)
                continue
            text = environ.get(spec.name, spec.default).strip()
            try:
                values[spec.field] = _parse(spec, text)
            except ValueError as exc:
                shown = "<redacted>" if spec.name == "BACKUP_WEBHOOK_URL" else repr(text)  # it may carry a token
                problems.append(f"{spec.name}={shown} is invalid: {exc}")
        if problems:
            raise ConfigError(problems)
        values["backup_dir"] = values["backup_dir"] or Path("/backups")
        values["free_space_margin"] = float(values["free_space_margin"])
        values["drill_user"] = values["drill_user"] or None
        settings = cls(**values)
        if settings.drill_max_rpo <= 0:
            # derived default: a drill of a set the schedule still counts as fresh passes
            settings = replace(settings, drill_max_rpo=settings.max_backup_age)
        return settings


def _parse(spec: Spec, text: str) -> Any:
    """The spec's value of `text`; a duration without a unit is read as seconds with a deprecation warning."""
    try:
        return spec.parse(text)
    except BareNumber as bare:
        spelled = spell_seconds(bare.value)
        logger.warning(
            "%s=%s without a unit is deprecated and refused from the next release: write %s=%s",
            spec.name,
            text,
            spec.name,
            spelled,
        )
        return spec.parse(spelled)


def _secret(name: str, environ: Mapping[str, str], read: bool, problems: list[str]) -> str | None:
    """`name` or the file named by `name_FILE` (never both); None when neither is set or `read` is False."""
    file_name = f"{name}_FILE"
    plain = environ.get(name, "")
    path = environ.get(file_name, "").strip()
    if plain and path:
        problems.append(f"both {name} and {file_name} are set (but are exclusive)\nhint: keep only {file_name}")
        return None
    if plain:
        return plain
    if not path or not read:
        return None
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        problems.append(f"unable to read {file_name}={path}: {exc.strerror}\nhint: mount the secret or fix its mode")
        return None


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A problem for each `BACKUP_*` name that is no setting: a typo must not leave a default in place."""
    problems = []
    for name in sorted(key for key in environ if key.startswith("BACKUP_") and key not in SPEC_NAMES):
        close = difflib.get_close_matches(name, sorted(SPEC_NAMES), n=1)
        hint = f"did you mean {close[0]}?" if close else "see the settings table in services/backup/README.md"
        problems.append(f"{name} is not a setting of pgbackup\nhint: {hint}")
    return problems


def settings_table() -> str:
    """The Markdown table of every setting, as generated into services/backup/README.md."""
    lines = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for spec in SPECS:
        name = f"`{spec.name}`" + (f" / `{spec.name}_FILE`" if spec.secret_file else "")
        default = f"`{spec.default}`" if spec.default else "(empty)"
        lines.append(f"| {name} | {default} | {spec.allowed} | {spec.help.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def compose_environment() -> str:
    """The backup services' pass-through list: `NAME: "${NAME:-default}"` for each `compose="pass"` spec."""
    passed = [spec for spec in SPECS if spec.compose == "pass"]
    return "".join(f'{spec.name}: "${{{spec.name}:-{spec.default}}}"\n' for spec in passed)
