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
from urllib.parse import unquote, urlsplit

import psycopg
import pytz
from psycopg.conninfo import conninfo_to_dict

from pgbackup.age import parse_recipients
from pgbackup.cadence import Cadence, parse_cadence
from pgbackup.errors import ConfigError
from pgbackup.target import SECRET_KEYWORDS, Target, check_keywords
from pgbackup.units import BareNumber, byte_size, seconds, spell_seconds

logger = logging.getLogger(__name__)

Parser = Callable[[str], Any]
Compose = Literal["pass", "stack", "never"]


@dataclass(frozen=True, slots=True)
class Spec:
    """One environment variable. `parse` turns its (stripped) text into the field's value or raises ValueError
    (reason, then `hint:` lines); `allowed` says what it accepts, for the README. `compose`: `pass` from
    compose/.env with this default (the generated block), `stack` fixed by compose.yaml itself or not passed,
    `never` not passed by compose.yaml at all (BACKUP_DATABASE_URL: a Compose file for an external server
    passes it). `secret_file`: a secret, also read from the file `NAME_FILE` names.

    `connection`: a split connection setting. Its `field` is the libpq keyword it sets (`host`, `port`, `user`,
    `dbname`, `sslmode`, ...), its value goes into the connection of every Python connection and client program,
    and it is exclusive with BACKUP_DATABASE_URL: the rule is computed from this flag, so a split setting
    declared later is covered by declaring it."""

    name: str
    field: str
    parse: Parser
    allowed: str
    default: str
    help: str
    compose: Compose = "pass"
    secret_file: bool = False
    connection: bool = False


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


def _optional_cadence(text: str) -> Cadence | None:
    """A schedule, or None for `off` (or empty)."""
    if text.lower() in ("", "off"):
        return None
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


_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _sslmode(text: str) -> str:
    if text and text not in _SSL_MODES:
        raise ValueError(f"not a libpq sslmode\nhint: use one of {', '.join(_SSL_MODES)}")
    return text


def _rootcert(text: str) -> str:
    if text and text != "system" and not text.startswith("/"):
        raise ValueError("neither `system` nor an absolute path\nhint: use e.g. /run/secrets/tls_ca_cert")
    return text


def _size(text: str) -> int:
    return byte_size(text)


def _size_at_least(minimum: int) -> Parser:
    def parse(text: str) -> int:
        value = byte_size(text)
        if value < minimum:
            raise ValueError(f"is below the minimum of {minimum} bytes")
        return value

    return parse


DRILL_SCRATCH_MODES = ("auto", "memory", "disk")


def _drill_scratch(text: str) -> str:
    if text.lower() not in DRILL_SCRATCH_MODES:
        raise ValueError(f"must be one of {', '.join(DRILL_SCRATCH_MODES)}\nhint: auto chooses by the set's size")
    return text.lower()


def _offsite_url(text: str) -> tuple[str, str] | None:
    """(bucket, prefix) of `s3://bucket[/prefix]`; None when empty (no offsite copies)."""
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("not an s3://bucket[/prefix] URL\nhint: use e.g. s3://backups/pgstack")
    if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
        raise ValueError(
            "has a query, credentials or a port\nhint: put the endpoint in BACKUP_OFFSITE_ENDPOINT and the "
            "credentials in BACKUP_OFFSITE_ACCESS_KEY_ID and BACKUP_OFFSITE_SECRET_ACCESS_KEY_FILE"
        )
    if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", parts.netloc):
        raise ValueError(f"bucket {parts.netloc!r} is not an S3 bucket name\nhint: 3 to 63 of a-z, 0-9, . and -")
    return parts.netloc, parts.path.strip("/")


def _recipients(text: str) -> tuple[str, ...]:
    return parse_recipients(text) if text else ()


_ANY_TEXT = "text"
OFFSITE_URL = "BACKUP_OFFSITE_URL"
OFFSITE_SECRET = "BACKUP_OFFSITE_SECRET_ACCESS_KEY"
URL = "BACKUP_DATABASE_URL"
PASSWORD = "BACKUP_PGPASSWORD"
CONNECT_TIMEOUT = "BACKUP_PGCONNECT_TIMEOUT"
EXAMPLE_URL = "postgresql://backup_operator@db.example.com:5432/postgres?sslmode=verify-full"
_HOURLY = "every 60 minutes"

SPECS: tuple[Spec, ...] = (
    Spec(
        URL,
        "database_url",
        _text(False),
        "a libpq URI or key=value string",
        "",
        "the whole connection to the source server, instead of the split BACKUP_PG* settings: "
        "`postgresql://backup_operator@db.example.com:5432/postgres?sslmode=verify-full` (host lists, sslmode, "
        "sslrootcert, sslcert/sslkey, target_session_attrs, load_balance_hosts, ...); it must name the user; "
        "its password, if any, only if BACKUP_PGPASSWORD is unset; not connect_timeout (BACKUP_PGCONNECT_TIMEOUT)",
        "never",
        secret_file=True,
    ),
    Spec(
        "BACKUP_PGHOST",
        "host",
        _text(True),
        "a host, address or socket directory",
        "localhost",
        "PostgreSQL host (or Unix socket directory) to back up from",
        "stack",
        connection=True,
    ),
    Spec("BACKUP_PGPORT", "port", _whole(1, 65535), "1 to 65535", "5432", "PostgreSQL port", "stack", connection=True),
    Spec(
        "BACKUP_PGUSER",
        "user",
        _text(True),
        "a role name",
        "backup_operator",
        "role to connect as: a member of pg_read_all_data for backups, a superuser for restore",
        "stack",
        connection=True,
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
        "dbname",
        _text(True),
        "a database name",
        "postgres",
        "maintenance database for catalog queries, globals and CREATE DATABASE",
        "stack",
        connection=True,
    ),
    Spec(
        "BACKUP_PGSSLMODE",
        "sslmode",
        _sslmode,
        ", ".join(_SSL_MODES),
        "",
        "libpq `sslmode` of every connection (pg_dump, pg_restore and psql too); empty = libpq's default "
        "(`prefer`); the stack sets `verify-full`",
        "stack",
        connection=True,
    ),
    Spec(
        "BACKUP_PGSSLROOTCERT",
        "sslrootcert",
        _rootcert,
        "an absolute path, or `system`",
        "",
        "libpq `sslrootcert`: the CA certificates that verify the server, or `system` for the OS's trusted roots; "
        "empty = libpq's default (~/.postgresql/root.crt); the stack sets its own CA",
        "stack",
        connection=True,
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
        "BACKUP_SCRUB_SCHEDULE",
        "scrub_cadence",
        _optional_cadence,
        "a schedule like BACKUP_SCHEDULE's, or `off`",
        "daily at 04:30",
        "when `run` re-checks every retained set (checksums, `pg_restore --list`); `off` = only `scrub` by hand",
    ),
    Spec(
        "BACKUP_SCRUB_RATE",
        "scrub_rate",
        _size_at_least(1024 * 1024),
        "bytes per second, 1MiB or more",
        "64MiB",
        "average read rate of a scrub, so that it never starves the database's disk",
    ),
    Spec(
        "BACKUP_DRILL_SCHEDULE",
        "drill_cadence",
        _optional_cadence,
        "a schedule like BACKUP_SCHEDULE's, or `off`",
        "off",
        "when `run` restore-drills the newest good set itself (a private server, as `drill`); a failed or "
        "overdue drill makes the sidecar unhealthy",
    ),
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
        "where the drill's private server keeps its data when it fits the memory budget; empty = the system "
        "temp directory (a tmpfs in the stack)",
        "stack",
    ),
    Spec(
        "BACKUP_DRILL_MEMORY_BUDGET",
        "drill_memory_budget",
        _size_at_least(1 << 20),
        "1MiB or more",
        "4GiB",
        "a set whose restored size is estimated above this is drilled on disk (BACKUP_DRILL_DISK_DIR), not in "
        "memory (BACKUP_DRILL_WORK_DIR)",
    ),
    Spec(
        "BACKUP_DRILL_SCRATCH",
        "drill_scratch",
        _drill_scratch,
        ", ".join(DRILL_SCRATCH_MODES),
        "auto",
        "where the drill's private server keeps its data: auto = memory when the estimate fits the budget, "
        "else disk; memory or disk forces one",
    ),
    Spec(
        "BACKUP_DRILL_DISK_DIR",
        "drill_disk_dir",
        _path(False),
        "an absolute path",
        "",
        "disk-backed scratch directory for a drill that does not fit in memory; empty = none (such a drill fails)",
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
        OFFSITE_URL,
        "offsite_url",
        _offsite_url,
        "`s3://bucket[/prefix]`",
        "",
        "where each verified set is copied, encrypted with age (docs/operations.md, Offsite copies); empty = no "
        "offsite copies",
    ),
    Spec(
        "BACKUP_OFFSITE_ENDPOINT",
        "offsite_endpoint",
        _url,
        "an http(s) URL",
        "",
        "the S3-compatible service's endpoint (MinIO, Ceph, Garage, a cloud's S3 API); empty = AWS S3",
    ),
    Spec(
        "BACKUP_OFFSITE_REGION",
        "offsite_region",
        _text(False),
        "a region name",
        "",
        "the bucket's region (request signing); empty = us-east-1",
    ),
    Spec(
        "BACKUP_OFFSITE_ACCESS_KEY_ID",
        "offsite_access_key_id",
        _text(False),
        _ANY_TEXT,
        "",
        "access key id of the offsite credentials (its secret: BACKUP_OFFSITE_SECRET_ACCESS_KEY_FILE)",
    ),
    Spec(
        OFFSITE_SECRET,
        "offsite_secret_access_key",
        _text(False),
        _ANY_TEXT,
        "",
        "secret access key of the offsite credentials; the stack mounts compose/secrets/offsite_secret_access_key "
        "(PROFILE=offsite)",
        "stack",
        secret_file=True,
    ),
    Spec(
        "BACKUP_OFFSITE_RECIPIENTS",
        "offsite_recipients",
        _recipients,
        "age public keys, comma-separated",
        "",
        "the age public keys (age1...) each copy is encrypted to; the private key never goes on this host",
    ),
    Spec(
        "BACKUP_OFFSITE_KEEP",
        "offsite_keep",
        _whole(1, 100_000),
        "1 to 100000",
        "7",
        "offsite retention: keep the newest N complete copies (the newest is never deleted)",
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

    target: Target  # the source server: BACKUP_DATABASE_URL or the split BACKUP_PG* settings, and the password
    connect_timeout: float
    connect_retry: float
    backup_dir: Path
    cadence: Cadence
    tz: str
    on_start: bool
    scrub_cadence: Cadence | None
    scrub_rate: int
    drill_cadence: Cadence | None
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
    drill_memory_budget: int
    drill_scratch: str
    drill_disk_dir: Path | None
    drill_user: str | None
    offsite_url: tuple[str, str] | None  # (bucket, prefix); None: no offsite copies
    offsite_endpoint: str | None
    offsite_region: str
    offsite_access_key_id: str
    offsite_secret_access_key: str | None = field(repr=False)
    offsite_recipients: tuple[str, ...]
    offsite_keep: int
    log_level: str

    @property
    def offsite(self) -> bool:
        """Whether each verified set is copied offsite (BACKUP_OFFSITE_URL is set)."""
        return self.offsite_url is not None

    @property
    def max_backup_age(self) -> float:
        """Seconds after which the newest verified set counts as stale (schedule period + grace)."""
        return self.cadence.period_seconds + self.freshness_grace

    @property
    def max_drill_age(self) -> float | None:
        """Seconds after which the last scheduled drill is overdue (drill period + grace); None without one."""
        return None if self.drill_cadence is None else self.drill_cadence.period_seconds + self.freshness_grace

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

        `read_secrets=False` skips reading BACKUP_PGPASSWORD_FILE and BACKUP_DATABASE_URL_FILE, for commands that
        never connect to the source server (drill, list, status, verify, prune, healthcheck): the drill container
        has no secrets. A duration written without a unit still means seconds, for this release, and logs what to
        write. With a URL, the split connection settings are not read (only refused when set).
        """
        problems = unknown_variables(environ)
        url_name = _url_name(environ)
        values: dict[str, Any] = {}
        split: dict[str, str] = {}
        for spec in SPECS:
            if spec.secret_file:
                # the offsite credentials serve commands that never connect too (offsite-verify)
                read = read_secrets or spec.name == OFFSITE_SECRET
                values[spec.field] = _secret(spec.name, environ, read, problems)
                continue
            if spec.connection and url_name is not None:
                continue  # the URL is the connection; a split setting beside it is refused in _target
            text = environ.get(spec.name, spec.default).strip()
            try:
                value = _parse(spec, text)
            except ValueError as exc:
                # a webhook URL may carry a token; a private age key pasted as a recipient must not be echoed
                secret = spec.name == "BACKUP_WEBHOOK_URL" or "AGE-SECRET-KEY" in text.upper()
                shown = "<redacted>" if secret else repr(text)
                problems.append(f"{spec.name}={shown} is invalid: {exc}")
                continue
            if spec.connection:
                split[spec.field] = "" if value is None else str(value)
            else:
                values[spec.field] = value
        timeout = max(1, int(values.get("connect_timeout", 10)))
        password = _Password(values.pop("pg_password"), _given_name(environ, PASSWORD))
        url_text = values.pop("database_url")
        if url_name is None:
            target = None if problems else _split_target(split, password, timeout, problems)
            if target is not None and read_secrets:
                _check_rootcert(target, problems)
        else:
            target = _url_target(environ, url_name, url_text, password, timeout, problems)
        _check_offsite(environ, values, read_secrets, problems)
        if problems:
            raise ConfigError(problems)
        assert target is not None  # no problem: one was made
        values["target"] = target
        values["backup_dir"] = values["backup_dir"] or Path("/backups")
        values["free_space_margin"] = float(values["free_space_margin"])
        values["drill_user"] = values["drill_user"] or None
        settings = cls(**values)
        if settings.drill_max_rpo <= 0:
            # derived default: a drill of a set the schedule still counts as fresh passes
            settings = replace(settings, drill_max_rpo=settings.max_backup_age)
        return settings


def _check_offsite(environ: Mapping[str, str], values: dict[str, Any], read_secrets: bool, problems: list[str]) -> None:
    """With BACKUP_OFFSITE_URL: recipients, and (for the commands that copy) the credentials; without it: no
    other BACKUP_OFFSITE_* setting, which would otherwise be silently ignored."""
    if "offsite_url" not in values or "offsite_recipients" not in values:
        return  # already reported as invalid
    others = [
        spec.name
        for spec in SPECS
        if spec.name.startswith("BACKUP_OFFSITE_")
        and spec.name not in (OFFSITE_URL, "BACKUP_OFFSITE_KEEP", OFFSITE_SECRET)
        and environ.get(spec.name, "").strip()
    ]
    if values["offsite_url"] is None:
        if others:
            problems.append(
                f"{', '.join(others)} set without {OFFSITE_URL}\n"
                f"hint: set {OFFSITE_URL}=s3://bucket/prefix to copy each set offsite, or unset them"
            )
        return
    if not values["offsite_recipients"]:
        problems.append(
            f"{OFFSITE_URL} is set but BACKUP_OFFSITE_RECIPIENTS is empty: the copies would not be encrypted\n"
            "hint: make a key pair offline with `age-keygen -o key.txt` and set BACKUP_OFFSITE_RECIPIENTS to its "
            "public key (age1...)"
        )
    if not values.get("offsite_access_key_id"):
        problems.append(
            f"{OFFSITE_URL} is set but BACKUP_OFFSITE_ACCESS_KEY_ID is empty\n"
            "hint: set the access key id of credentials that may write, list and delete in the bucket"
        )
    if read_secrets and not values.get("offsite_secret_access_key"):
        problems.append(
            f"{OFFSITE_URL} is set but {OFFSITE_SECRET}_FILE names no readable, non-empty file\n"
            "hint: write the secret access key into compose/secrets/offsite_secret_access_key and start the stack "
            "with PROFILE=offsite (it mounts that secret)"
        )


@dataclass(frozen=True, slots=True)
class _Password:
    value: str | None = field(repr=False)
    name: str  # BACKUP_PGPASSWORD or BACKUP_PGPASSWORD_FILE, whichever is set


def _given_name(environ: Mapping[str, str], name: str) -> str:
    """`name`, or `name_FILE` when that is the one set: the variable a message names."""
    return name if environ.get(name, "").strip() or not environ.get(f"{name}_FILE", "").strip() else f"{name}_FILE"


def _url_name(environ: Mapping[str, str]) -> str | None:
    """BACKUP_DATABASE_URL or BACKUP_DATABASE_URL_FILE, whichever is set (non-empty); None without a URL."""
    if environ.get(URL, "").strip() or environ.get(f"{URL}_FILE", "").strip():
        return _given_name(environ, URL)
    return None


def _split_names() -> tuple[tuple[str, str], ...]:
    """(libpq keyword, setting) of every split connection setting, as declared in SPECS."""
    return tuple((spec.field, spec.name) for spec in SPECS if spec.connection)


def _split_name(keyword: str) -> str:
    return dict(_split_names())[keyword]


def _split_target(split: dict[str, str], password: _Password, timeout: int, problems: list[str]) -> Target | None:
    """The source server from the split settings (each set or at its default), checked by libpq."""
    keywords = {key: value for key, value in split.items() if value}
    reason = check_keywords(keywords)
    if reason is not None:
        names = ", ".join(name for _, name in _split_names())
        problems.append(f"the connection settings {names} are invalid together: {reason}\nhint: fix what it names")
        return None
    origin = password.name if password.value is not None else None
    return Target(tuple(keywords.items()), password.value, timeout, None, origin, _split_names())


def _check_rootcert(target: Target, problems: list[str]) -> None:
    """BACKUP_PGSSLROOTCERT names a file this container can read (libpq would only say so at the first TLS
    handshake, as a certificate failure)."""
    path = target.get("sslrootcert")
    if not path or path == "system":
        return
    try:
        with Path(path).open("rb"):
            pass
    except OSError as exc:
        problems.append(
            f"BACKUP_PGSSLROOTCERT={path!r} is invalid: unable to read the CA file: {exc.strerror}\n"
            "hint: mount the CA certificate there (the stack's: compose/secrets/ca.crt as /run/secrets/tls_ca_cert), "
            "or use `system` for the OS's trusted roots"
        )


def _url_target(
    environ: Mapping[str, str],
    url_name: str,
    text: str | None,
    password: _Password,
    timeout: int,
    problems: list[str],
) -> Target | None:
    """The source server from BACKUP_DATABASE_URL, with its rules: no split connection setting beside it, a user,
    a password in one place only, no connect_timeout (BACKUP_PGCONNECT_TIMEOUT is the one timeout), no secret
    that would have to go on a command line. None (and `problems` extended) when one is broken."""
    before = len(problems)
    conflicting = [spec.name for spec in SPECS if spec.connection and environ.get(spec.name, "").strip()]
    if conflicting:
        listed = ", ".join(conflicting)
        problems.append(
            f"both {url_name} and {listed} are set (but are exclusive)\n"
            f"hint: the URL is the whole connection: put those values into it (e.g. {EXAMPLE_URL}) "
            f"and unset {listed}, or unset {url_name}"
        )
    if text is None:  # BACKUP_DATABASE_URL_FILE, which a command that never connects does not read
        return None if conflicting else Target((("dbname", _default_dbname()),), None, timeout, url_name)
    text = text.strip()
    try:
        parsed = conninfo_to_dict(text)
    except psycopg.ProgrammingError as exc:
        problems.append(
            f"{url_name}=<redacted> is invalid: {redact(text, str(exc).strip())}\n"
            f"hint: write a libpq URI ({EXAMPLE_URL}) or key=value pairs (host=... user=... dbname=...)"
        )
        return None
    keywords = {key: str(value) for key, value in parsed.items() if value is not None}
    url_password = keywords.pop("password", None)
    if _misread_userinfo(text):
        problems.append(
            f"{url_name}=<redacted> is invalid: an @ or / in its user or password is not percent-encoded, so libpq "
            "reads part of the password as the host, port or database\n"
            "hint: percent-encode them in the URL: @ as %40, / as %2F, : as %3A"
        )
        return None
    if not keywords.get("user"):
        problems.append(
            f"{url_name} names no user ({_split_name('user')} does not apply with a URL)\n"
            f"hint: put the role in the URL: {EXAMPLE_URL}"
        )
    password_set = bool(environ.get(PASSWORD, "") or environ.get(f"{PASSWORD}_FILE", "").strip())
    if url_password is not None and password_set:
        problems.append(
            f"both a password in {url_name} and {password.name} are set (but are exclusive)\n"
            f"hint: remove the password from the URL and keep it in {PASSWORD}_FILE"
        )
    if "connect_timeout" in keywords:
        seconds_text = keywords["connect_timeout"]
        problems.append(
            f"{url_name} sets connect_timeout={seconds_text}, which {CONNECT_TIMEOUT} sets for every connection\n"
            f"hint: remove connect_timeout from the URL and set {CONNECT_TIMEOUT}={seconds_text}s"
        )
    secret = sorted(SECRET_KEYWORDS & keywords.keys())
    if secret:
        problems.append(
            f"{url_name} sets {', '.join(secret)}, which pgbackup cannot hand to pg_dump: libpq reads it from no "
            "environment variable, and a secret never goes on a command line\n"
            "hint: use a client key without a passphrase (mode 0600, mounted as a secret), or a password"
        )
    if len(problems) > before:
        return None
    keywords.setdefault("dbname", _default_dbname())
    reason = check_keywords(keywords)
    if reason is not None:
        problems.append(
            f"{url_name}=<redacted> is invalid: {redact(text, reason)}\n"
            "hint: fix that parameter of the URL (libpq's connection parameters and their values)"
        )
        return None
    if url_password is not None:
        return Target(tuple(keywords.items()), url_password, timeout, url_name, url_name, _split_names())
    origin = password.name if password.value is not None else None
    return Target(tuple(keywords.items()), password.value, timeout, url_name, origin, _split_names())


def _default_dbname() -> str:
    """The database a URL without one connects to: BACKUP_PGDATABASE's default, as without a URL."""
    return next(spec.default for spec in SPECS if spec.connection and spec.field == "dbname")


# libpq's reading: the user information ends at the first @ before the first /
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<user>[^:@/]*):(?P<password>[^@/]*)@")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<netloc>[^/]*)(?P<path>/[^?]*)?")


def _misread_userinfo(text: str) -> bool:
    """Whether a URI has a second @ (an unencoded @ in the password: libpq takes the rest as the host) or an @ in
    its path (an unencoded / in the password: libpq takes the user and the password's start as host and port)."""
    uri = _URI.match(text)
    return uri is not None and (uri.group("netloc").count("@") > 1 or "@" in (uri.group("path") or ""))


def redact(text: str, message: str) -> str:
    """libpq's `message` about the connection string `text`, with every secret in `text` (the URI's password,
    `password=`, `sslpassword=`, `oauth_client_secret=` in key/value or query form) replaced by <redacted>:
    libpq quotes the text it cannot parse, the whole URI included."""
    secrets: set[str] = set()
    userinfo = _USERINFO.match(text)
    if userinfo:
        secrets.add(userinfo.group("password"))
    for keyword in SECRET_KEYWORDS:
        quoted = r"'(?P<q>(?:[^'\\]|\\.)*)'?"
        for match in re.finditer(rf"(?:^|[\s?&]){keyword}\s*=\s*(?:{quoted}|(?P<bare>[^\s&]*))", text):
            secrets.add(match.group("q") if match.group("q") is not None else match.group("bare"))
    for secret in sorted((item for item in secrets if item), key=len, reverse=True):
        for form in {secret, unquote(secret)}:
            message = message.replace(form, "<redacted>")
    return message


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
