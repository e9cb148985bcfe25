"""Every setting of the server, declared once: environment variable, type, default, allowed range and help.

`Settings.from_env(os.environ)` parses and checks all of them, then the cross-field rules, and raises one
`ConfigError` listing every problem. `Settings(...)` built directly (tests) runs the same checks. Secrets
follow the official postgres image's `_FILE` contract: `X` or `X_FILE`, never both; a file is read once and
its trailing newline stripped. The README's configuration table is generated from `VARIABLES`
(`python -m pgmcp config-table`), and a test fails when it is stale.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pgmcp.errors import ConfigError

ENV_PREFIX = "MCP_"
READER_CONNECTION_LIMIT = 20
"""CONNECTION LIMIT of the reader role made by compose/initdb/10-roles.sh; the pool must stay below it."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "[::1]", "mcp")
DEFAULT_ALLOWED_ORIGINS = ("http://127.0.0.1", "http://localhost", "http://[::1]")

_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MIN_KEY_LENGTH = 16
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(\d{1,5}))?$")
_ORIGIN = re.compile(
    r"^(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(\d{1,5}))?$"
)
_IDENTIFIER = re.compile(r"^[^\x00]{1,63}$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A named bearer key. The name goes to the audit log and metrics; the secret never leaves memory."""

    name: str
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, secret=<redacted>)"


@dataclass(frozen=True, slots=True)
class Settings:
    """The validated configuration, passed explicitly to everything that needs it (no globals)."""

    database_host: str = "127.0.0.1"
    database_port: int = 5432
    database_name: str = "app"
    database_user: str = "mcp_reader"
    database_password: str = field(default="", repr=False)
    database_sslmode: str = "prefer"
    database_connect_timeout_ms: int = 3000
    api_keys: tuple[ApiKey, ...] = ()
    bind_host: str = "127.0.0.1"
    port: int = 8080
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    max_rows: int = 100
    max_bytes: int = 256 * 1024
    max_cell_bytes: int = 8 * 1024
    statement_timeout_ms: int = 5000
    lock_timeout_ms: int = 1000
    pool_min_size: int = 2
    pool_max_size: int = 10
    pool_timeout_ms: int = 2000
    max_concurrency_per_key: int = 8
    max_request_bytes: int = 1024 * 1024
    allow_explain_analyze: bool = False
    schemas: tuple[str, ...] = ()
    log_level: str = "INFO"
    dev_allow_privileged_role: bool = False
    startup_timeout_ms: int = 60_000

    def __post_init__(self) -> None:
        problems = _check_values({spec.field: getattr(self, spec.field) for spec in VARIABLES})
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Parse and validate every `MCP_*` variable; raise `ConfigError` listing all problems at once."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for spec in VARIABLES:
            try:
                raw = _read_raw(spec, environ)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if raw is None:
                continue
            try:
                values[spec.field] = spec.parse(raw)
            except ValueError as exc:
                shown = "<redacted>" if spec.secret else repr(raw)
                problems.append(f"{spec.env}={shown} is invalid: {exc}")
        if "database_password" not in values and not any(item.startswith("MCP_DATABASE_PASSWORD") for item in problems):
            problems.append(
                "MCP_DATABASE_PASSWORD_FILE (or MCP_DATABASE_PASSWORD) is not set: point it at the file holding "
                "the reader role's password, e.g. MCP_DATABASE_PASSWORD_FILE=/run/secrets/mcp_reader_password"
            )
        problems.extend(_check_values({**_defaults(), **values}))
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    def database_conninfo(self) -> dict[str, Any]:
        """Keyword arguments for psycopg's connect(); the password is among them, so never log this."""
        return {
            "host": self.database_host,
            "port": self.database_port,
            "dbname": self.database_name,
            "user": self.database_user,
            "password": self.database_password,
            "sslmode": self.database_sslmode,
            "connect_timeout": max(1, round(self.database_connect_timeout_ms / 1000)),
            "application_name": "pgmcp",
        }

    def database_target(self) -> str:
        """Where the server connects, for messages and logs: `user@host:port/dbname`, no secret."""
        return f"{self.database_user}@{self.database_host}:{self.database_port}/{self.database_name}"


# -- parsers ---------------------------------------------------------------------------------------------------


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip(), 10)
        except ValueError:
            raise ValueError("not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean: use true or false")


def _choice(*allowed: str, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def _text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _secret(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """`name:key` per line (a line may also hold several, comma-separated); `#` comment lines and blank lines
    are ignored. Problems name the line, never the key."""
    keys: list[ApiKey] = []
    problems: list[str] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        for entry in filter(None, (part.strip() for part in stripped.split(","))):
            name, separator, secret = entry.partition(":")
            name, secret = name.strip(), secret.strip()
            if not separator or not secret:
                problems.append(f"line {number}: an entry is not `name:key` (the key part is missing)")
            elif not _KEY_NAME.match(name):
                problems.append(f"line {number}: key name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
            elif len(secret) < _MIN_KEY_LENGTH:
                problems.append(
                    f"line {number} ({name}): the key is shorter than {_MIN_KEY_LENGTH} characters: "
                    "generate one with `openssl rand -hex 32`"
                )
            else:
                keys.append(ApiKey(name, secret))
    names = [key.name for key in keys]
    problems.extend(
        f"key name {name!r} appears more than once" for name in sorted({n for n in names if names.count(n) > 1})
    )
    secrets = [key.secret for key in keys]
    if len(set(secrets)) != len(secrets):
        problems.append("two entries share the same key: give every client its own key")
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(keys)


def _hosts(raw: str) -> tuple[str, ...]:
    items = _csv(raw)
    bad = [item for item in items if not _HOST.match(item) or not _port_ok(_HOST.match(item))]
    if bad:
        raise ValueError(f"not a host or host:port: {', '.join(bad)} (example: 127.0.0.1,localhost,mcp:8080)")
    if not items:
        raise ValueError("must name at least one host")
    return tuple(item.lower() for item in items)


def _origins(raw: str) -> tuple[str, ...]:
    items = _csv(raw)
    bad = [item for item in items if not _ORIGIN.match(item) or not _port_ok(_ORIGIN.match(item), group=3)]
    if bad:
        raise ValueError(
            f"not an origin (scheme://host[:port]): {', '.join(bad)} (example: http://localhost,https://ai.example.com)"
        )
    return tuple(item.lower() for item in items)


def _port_ok(match: re.Match[str] | None, group: int = 1) -> bool:
    if match is None:
        return False
    port = match.group(group)
    return port is None or 1 <= int(port) <= 65535


def _schemas(raw: str) -> tuple[str, ...]:
    items = _csv(raw)
    bad = [item for item in items if not _IDENTIFIER.match(item)]
    if bad:
        raise ValueError(f"not a schema name: {', '.join(repr(item) for item in bad)}")
    return items


# -- declarations ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: where its value goes, how it is parsed, and what the README says about it."""

    env: str
    field: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    file_variant: bool = False
    default_doc: str | None = None


VARIABLES: tuple[Variable, ...] = (
    Variable("MCP_DATABASE_HOST", "database_host", _text, "PostgreSQL host name or address"),
    Variable("MCP_DATABASE_PORT", "database_port", _integer(1, 65535), "PostgreSQL port"),
    Variable("MCP_DATABASE_NAME", "database_name", _text, "database the tools read"),
    Variable(
        "MCP_DATABASE_USER",
        "database_user",
        _text,
        "login role; must be read-only (audited at startup: no superuser, no write grants, no CREATE/TEMP)",
    ),
    Variable(
        "MCP_DATABASE_PASSWORD",
        "database_password",
        _secret,
        "password of that role; prefer `MCP_DATABASE_PASSWORD_FILE` (a secret file)",
        secret=True,
        file_variant=True,
        default_doc="(required)",
    ),
    Variable("MCP_DATABASE_SSLMODE", "database_sslmode", _choice(*SSL_MODES), "libpq `sslmode` for the connection"),
    Variable(
        "MCP_DATABASE_CONNECT_TIMEOUT_MS",
        "database_connect_timeout_ms",
        _integer(1000, 60_000),
        "timeout of one connection attempt, in milliseconds",
    ),
    Variable(
        "MCP_API_KEYS",
        "api_keys",
        parse_api_keys,
        "bearer keys for HTTP, `name:key` per line (`#` comments allowed); prefer `MCP_API_KEYS_FILE`. "
        "Required for HTTP, unused by `--stdio`",
        secret=True,
        file_variant=True,
        default_doc="(none)",
    ),
    Variable(
        "MCP_BIND_HOST",
        "bind_host",
        _text,
        "address the HTTP server listens on (the container sets 0.0.0.0; Host/Origin checks and keys stay on)",
    ),
    Variable("MCP_PORT", "port", _integer(1, 65535), "HTTP port"),
    Variable(
        "MCP_ALLOWED_HOSTS",
        "allowed_hosts",
        _hosts,
        "accepted `Host` headers, comma-separated; a name without `:port` accepts any port (else 421)",
        default_doc=",".join(DEFAULT_ALLOWED_HOSTS),
    ),
    Variable(
        "MCP_ALLOWED_ORIGINS",
        "allowed_origins",
        _origins,
        "accepted browser `Origin` headers, comma-separated; without `:port` any port (else 403). "
        "Requests without an Origin (non-browser clients) are accepted",
        default_doc=",".join(DEFAULT_ALLOWED_ORIGINS),
    ),
    Variable("MCP_MAX_ROWS", "max_rows", _integer(1, 10_000), "most rows a `query` returns; a model may ask fewer"),
    Variable(
        "MCP_MAX_BYTES",
        "max_bytes",
        _integer(1024, 64 * 1024 * 1024),
        "most bytes of values one result returns (UTF-8 size of the cells)",
    ),
    Variable(
        "MCP_MAX_CELL_BYTES",
        "max_cell_bytes",
        _integer(64, 64 * 1024 * 1024),
        "longer text values are cut to this many bytes and counted in `truncated_cells`",
    ),
    Variable(
        "MCP_STATEMENT_TIMEOUT_MS",
        "statement_timeout_ms",
        _integer(100, 600_000),
        "server-side `statement_timeout` of every tool call; a watchdog cancels the query if it does not fire",
    ),
    Variable(
        "MCP_LOCK_TIMEOUT_MS",
        "lock_timeout_ms",
        _integer(10, 600_000),
        "server-side `lock_timeout`: how long a query may wait for a lock",
    ),
    Variable("MCP_POOL_MIN_SIZE", "pool_min_size", _integer(0, READER_CONNECTION_LIMIT - 1), "connections kept open"),
    Variable(
        "MCP_POOL_MAX_SIZE",
        "pool_max_size",
        _integer(1, READER_CONNECTION_LIMIT - 1),
        f"most connections; stays below the reader role's CONNECTION LIMIT ({READER_CONNECTION_LIMIT}, "
        "checked again at startup)",
    ),
    Variable(
        "MCP_POOL_TIMEOUT_MS",
        "pool_timeout_ms",
        _integer(100, 60_000),
        "how long a call waits for a connection before failing with a retry hint; below the statement timeout",
    ),
    Variable(
        "MCP_MAX_CONCURRENCY_PER_KEY",
        "max_concurrency_per_key",
        _integer(1, 1000),
        "requests one API key may have in flight; more get 429 with `Retry-After`",
    ),
    Variable(
        "MCP_MAX_REQUEST_BYTES",
        "max_request_bytes",
        _integer(1024, 16 * 1024 * 1024),
        "largest accepted HTTP request body (else 413)",
    ),
    Variable(
        "MCP_ALLOW_EXPLAIN_ANALYZE",
        "allow_explain_analyze",
        _boolean,
        "let `explain` run `EXPLAIN ANALYZE` (still read-only, rolled back and under the timeout)",
    ),
    Variable(
        "MCP_SCHEMAS",
        "schemas",
        _schemas,
        "schemas the discovery tools and resources show, comma-separated; grants, not this list, limit `query`",
        default_doc="(every schema the role may use, except pg_catalog and information_schema)",
    ),
    Variable("MCP_LOG_LEVEL", "log_level", _choice(*LOG_LEVELS, upper=True), "log level (logs are JSON lines)"),
    Variable(
        "MCP_DEV_ALLOW_PRIVILEGED_ROLE",
        "dev_allow_privileged_role",
        _boolean,
        "development only: start even when the role audit fails (logs a loud warning on every start)",
    ),
    Variable(
        "MCP_STARTUP_TIMEOUT_MS",
        "startup_timeout_ms",
        _integer(1000, 3_600_000),
        "how long startup waits for the database before exiting with status 4",
    ),
)

_KNOWN_NAMES = frozenset(
    name for spec in VARIABLES for name in ((spec.env, f"{spec.env}_FILE") if spec.file_variant else (spec.env,))
)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`MCP_*` names that are not settings (likely typos); the CLI warns about them rather than failing,
    because MCP clients set variables of their own with the same prefix (e.g. `MCP_TIMEOUT`)."""
    return sorted(name for name in environ if name.startswith(ENV_PREFIX) and name not in _KNOWN_NAMES)


def _defaults() -> dict[str, Any]:
    return {item.name: item.default for item in fields(Settings)}


def _read_raw(spec: Variable, environ: Mapping[str, str]) -> str | None:
    """The raw text of a variable, from `X` or from the file named by `X_FILE`; None when unset."""
    value = environ.get(spec.env)
    if not spec.file_variant:
        return value
    file_name = environ.get(f"{spec.env}_FILE")
    if value is not None and file_name is not None:
        raise ValueError(f"both {spec.env} and {spec.env}_FILE are set (but are exclusive): keep one")
    if file_name is None:
        return value
    path = Path(file_name)
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"unable to read {spec.env}_FILE={file_name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"unable to read {spec.env}_FILE={file_name}: not UTF-8 text") from None
    return content.removesuffix("\n").removesuffix("\r")


def _check_values(values: Mapping[str, Any]) -> list[str]:
    """Range checks of directly built settings (parsers already did them for env values) and cross-field rules."""
    problems: list[str] = []
    by_field = {spec.field: spec for spec in VARIABLES}
    for name in ("database_host", "database_name", "database_user", "bind_host"):
        if not str(values[name]).strip():
            problems.append(f"{by_field[name].env} must not be empty")
    ranges = {
        "database_port": (1, 65535),
        "database_connect_timeout_ms": (1000, 60_000),
        "port": (1, 65535),
        "max_rows": (1, 10_000),
        "max_bytes": (1024, 64 * 1024 * 1024),
        "max_cell_bytes": (64, 64 * 1024 * 1024),
        "statement_timeout_ms": (100, 600_000),
        "lock_timeout_ms": (10, 600_000),
        "pool_min_size": (0, READER_CONNECTION_LIMIT - 1),
        "pool_max_size": (1, READER_CONNECTION_LIMIT - 1),
        "pool_timeout_ms": (100, 60_000),
        "max_concurrency_per_key": (1, 1000),
        "max_request_bytes": (1024, 16 * 1024 * 1024),
        "startup_timeout_ms": (1000, 3_600_000),
    }
    for name, (low, high) in ranges.items():
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems.append(f"{by_field[name].env}={value!r} is invalid: must be between {low} and {high}")
    if values["database_sslmode"] not in SSL_MODES:
        problems.append(f"MCP_DATABASE_SSLMODE={values['database_sslmode']!r} must be one of {', '.join(SSL_MODES)}")
    if values["log_level"] not in LOG_LEVELS:
        problems.append(f"MCP_LOG_LEVEL={values['log_level']!r} must be one of {', '.join(LOG_LEVELS)}")
    if not values["allowed_hosts"]:
        problems.append("MCP_ALLOWED_HOSTS must name at least one host")
    if problems:
        return problems  # cross-field rules compare values that are known to be in range
    if values["pool_min_size"] > values["pool_max_size"]:
        problems.append(
            f"MCP_POOL_MIN_SIZE={values['pool_min_size']} is above MCP_POOL_MAX_SIZE={values['pool_max_size']}: "
            "lower the minimum"
        )
    if values["pool_timeout_ms"] >= values["statement_timeout_ms"]:
        problems.append(
            f"MCP_POOL_TIMEOUT_MS={values['pool_timeout_ms']} must be below MCP_STATEMENT_TIMEOUT_MS="
            f"{values['statement_timeout_ms']}, so an unavailable database fails a call quickly"
        )
    if values["lock_timeout_ms"] > values["statement_timeout_ms"]:
        problems.append(
            f"MCP_LOCK_TIMEOUT_MS={values['lock_timeout_ms']} is above MCP_STATEMENT_TIMEOUT_MS="
            f"{values['statement_timeout_ms']}: it would never fire"
        )
    if values["max_cell_bytes"] > values["max_bytes"]:
        problems.append(
            f"MCP_MAX_CELL_BYTES={values['max_cell_bytes']} is above MCP_MAX_BYTES={values['max_bytes']}: "
            "one cell could never be returned whole"
        )
    return problems


def render_env_table() -> str:
    """The README's configuration table (Markdown), generated from `VARIABLES` and the `Settings` defaults."""
    defaults = _defaults()
    lines = [
        "| Variable | Default | Description |",
        "|---|---|---|",
    ]
    for spec in VARIABLES:
        name = f"`{spec.env}`" + (f" / `{spec.env}_FILE`" if spec.file_variant else "")
        if spec.default_doc is not None:
            default = spec.default_doc if spec.default_doc.startswith("(") else f"`{spec.default_doc}`"
        else:
            value = defaults[spec.field]
            default = f"`{str(value).lower() if isinstance(value, bool) else value}`"
        lines.append(f"| {name} | {default} | {spec.help} |")
    return "\n".join(lines) + "\n"


__all__ = ["VARIABLES", "ApiKey", "Settings", "Variable", "parse_api_keys", "render_env_table", "unknown_variables"]
