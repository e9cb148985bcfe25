"""Every setting of the server, declared once in `VARIABLES`: environment variable, kind (type and allowed
range), default (the `Settings` field's), help, and how the Compose stack passes it.

`Settings.from_env(os.environ)` parses and checks all of them, then the cross-field rules, and raises one
`ConfigError` listing every problem (exit status 3). `Settings(...)` built directly (tests) runs the same
checks, from the same declarations. Secrets follow the official postgres image's `_FILE` contract: `X` or
`X_FILE`, never both; a file is read once and its trailing newline stripped. An unknown `MCP_*` variable is
a problem (with the nearest name); an old name still works for one release and logs what to write instead.
The README table and the Compose pass-through list are generated from `VARIABLES` (`pgmcp.generated`).
The conventions shared with pgbackup: docs/conventions.md.
"""

from __future__ import annotations

import difflib
import logging
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgmcp.errors import ConfigError
from pgmcp.failures import Target
from pgmcp.identity import TOOLS
from pgmcp.keys import KeyEntry, parse_entries
from pgmcp.units import show_bytes, show_milliseconds, to_bytes, to_milliseconds

logger = logging.getLogger(__name__)

ENV_PREFIX = "MCP_"
READER_CONNECTION_LIMIT = 20
"""CONNECTION LIMIT of the reader role made by compose/initdb/10-roles.sh and `make reader-role`. The pool is
checked at startup against the real role's limit (and the database's, and the server's), not against this."""

CLIENT_VARIABLES = frozenset({"MCP_TIMEOUT", "MCP_TOOL_TIMEOUT"})
"""`MCP_*` names that belong to MCP clients, not to this server (Claude Code's server start-up and tool
timeouts): a desktop client starting `--stdio` hands them down, so they are not typos."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEAD_PEER_KEYWORDS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}
"""libpq's TCP options on every connection, so the kernel finds a server that vanished without closing its
connections (a partition, a lost node): an idle pooled connection is probed after 10 s and closed when the probes
go unanswered; one waiting for an answer is closed when what it sent stays unacknowledged for 15 s. Without them
a connection to a black-holed standby hangs for the system's TCP timeout (about 15 minutes), and a worker's pool
fills with them. A URL's own keepalives_* or tcp_user_timeout win; Unix sockets ignore them."""

TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
LOAD_BALANCE_HOSTS = ("disable", "random")
OAUTH_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Asymmetric JWS algorithms only: `none` is never accepted, nor HS* (a shared secret cannot come from a JWKS)."""
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "[::1]", "mcp")
DEFAULT_ALLOWED_ORIGINS = ("http://127.0.0.1", "http://localhost", "http://[::1]")

_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(\d{1,5}))?$")
_ORIGIN = re.compile(
    r"^(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(\d{1,5}))?$"
)
_IDENTIFIER = re.compile(r"^[^\x00]{1,63}$")


@dataclass(frozen=True, slots=True)
class Settings:
    """The validated configuration, passed explicitly to everything that needs it (no globals).
    Durations are whole milliseconds (`*_ms`), sizes bytes."""

    database_url: str = field(default="", repr=False)
    database_host: str = "127.0.0.1"
    database_port: int = 5432
    database_name: str = "app"
    database_user: str = "mcp_reader"
    database_password: str = field(default="", repr=False)
    database_sslmode: str = "prefer"
    database_sslrootcert: str = ""
    database_connect_timeout_ms: int = 3000
    database_target_session_attrs: str = "any"
    database_load_balance_hosts: str = "disable"
    max_replica_lag_ms: int = 0  # 0: no limit
    api_keys: tuple[KeyEntry, ...] = ()
    api_keys_file: str = ""  # MCP_API_KEYS_FILE's path, read again when it changes (`pgmcp.keys.KeyStore`)
    public_url: str = ""
    oauth_issuer: str = ""
    oauth_jwks_url: str = ""
    oauth_audience: str = ""
    oauth_algorithms: tuple[str, ...] = OAUTH_ALGORITHMS
    oauth_schema_scopes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    oauth_ca_cert: str = ""
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
    allow_public_temp: bool = False
    startup_timeout_ms: int = 60_000
    workers: int = 0  # 0: as many as the container has CPUs (`pgmcp.workers.worker_count`)

    def __post_init__(self) -> None:
        problems = _check_values({spec.field: getattr(self, spec.field) for spec in VARIABLES})
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Parse and validate every `MCP_*` variable; raise `ConfigError` listing all problems at once.
        Deprecated names are logged as warnings (logger `pgmcp.config`) with the line to write instead."""
        values: dict[str, Any] = {}
        problems = unknown_variables(environ)
        url_name = _url_name(environ)
        for spec in VARIABLES:
            if spec.connection and url_name is not None:
                continue  # the URL is the whole connection; a split setting beside it is refused below
            try:
                found = _read_raw(spec, environ)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if found is None:
                continue
            name, raw = found
            shown = "<redacted>" if spec.secret else repr(raw)
            try:
                values[spec.field] = spec.kind.parse(raw) if name == spec.env else spec.kind.parse(f"{raw.strip()}ms")
            except ValueError as exc:
                problems.append(f"{name}={shown} is invalid: {exc}")
                continue
            if name != spec.env:
                logger.warning(
                    "%s is deprecated and goes in the next release: write %s=%s instead",
                    name,
                    spec.env,
                    spec.kind.show(values[spec.field]),
                )
        if url_name is not None:
            problems.extend(_url_rules(environ, url_name, "database_password" in values))
        elif "database_password" not in values and not any(
            item.startswith("MCP_DATABASE_PASSWORD") for item in problems
        ):
            problems.append(
                "MCP_DATABASE_PASSWORD_FILE (or MCP_DATABASE_PASSWORD) is not set\n"
                "hint: point it at the file holding the reader role's password, "
                "e.g. MCP_DATABASE_PASSWORD_FILE=/run/secrets/mcp_reader_password"
            )
        if environ.get("MCP_API_KEYS_FILE") and "api_keys" in values:
            values["api_keys_file"] = environ["MCP_API_KEYS_FILE"]
        problems.extend(_check_values({**default_values(), **values}))
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    @property
    def resource(self) -> str:
        """The OAuth resource identifier (RFC 8707, RFC 9728): `MCP_PUBLIC_URL`/mcp, or empty."""
        return f"{self.public_url}/mcp" if self.public_url else ""

    @property
    def audience(self) -> str:
        return self.oauth_audience or self.resource

    def accepted_hosts(self) -> tuple[str, ...]:
        """`MCP_ALLOWED_HOSTS` and the host of `MCP_PUBLIC_URL`."""
        if not self.public_url:
            return self.allowed_hosts
        host = urlsplit(self.public_url).netloc
        return self.allowed_hosts if host in self.allowed_hosts else (*self.allowed_hosts, host)

    def accepted_origins(self) -> tuple[str, ...]:
        """`MCP_ALLOWED_ORIGINS` and the origin of `MCP_PUBLIC_URL`."""
        if not self.public_url or self.public_url in self.allowed_origins:
            return self.allowed_origins
        return (*self.allowed_origins, self.public_url)

    def database_conninfo(self) -> dict[str, Any]:
        """Keyword arguments for psycopg's connect(); the password is among them, so never log this.
        With MCP_DATABASE_URL: `DEAD_PEER_KEYWORDS`, then its keywords (which may set those), then the server's own
        (connect_timeout, application_name), which win."""
        timeout = max(1, round(self.database_connect_timeout_ms / 1000))
        if self.database_url:
            keywords: dict[str, Any] = url_keywords(self.database_url)
            if self.database_password:
                keywords["password"] = self.database_password
            return {**DEAD_PEER_KEYWORDS, **keywords, "connect_timeout": timeout, "application_name": "pgmcp"}
        return {
            **DEAD_PEER_KEYWORDS,
            "host": self.database_host,
            "port": self.database_port,
            "dbname": self.database_name,
            "user": self.database_user,
            "password": self.database_password,
            "sslmode": self.database_sslmode,
            **({"sslrootcert": self.database_sslrootcert} if self.database_sslrootcert else {}),
            **(
                {"target_session_attrs": self.database_target_session_attrs}
                if self.database_target_session_attrs != "any"
                else {}
            ),
            **(
                {"load_balance_hosts": self.database_load_balance_hosts}
                if self.database_load_balance_hosts != "disable"
                else {}
            ),
            "connect_timeout": timeout,
            "application_name": "pgmcp",
        }

    @property
    def role(self) -> str:
        """The login role: the URL's user, or MCP_DATABASE_USER."""
        return str(url_keywords(self.database_url)["user"]) if self.database_url else self.database_user

    @property
    def dbname(self) -> str:
        """The database the tools read: the URL's, or MCP_DATABASE_NAME."""
        return str(url_keywords(self.database_url)["dbname"]) if self.database_url else self.database_name

    def failure_target(self) -> Target:
        """The connection as failure messages name it (`pgmcp.failures`): keywords, settings, no password."""
        from_url = bool(self.database_url)
        in_url = from_url and "password" in conninfo_to_dict(self.database_url.strip())
        timeout = max(1, round(self.database_connect_timeout_ms / 1000))
        return Target.of(self.database_conninfo(), timeout, from_url=from_url, password_in_url=in_url)

    def database_target(self) -> str:
        """Where the server connects, for messages and logs: `user@host:port/dbname` (each host of a host list),
        no secret."""
        if not self.database_url:
            return f"{self.database_user}@{self.database_host}:{self.database_port}/{self.database_name}"
        keywords = url_keywords(self.database_url)
        hosts = str(keywords.get("host") or keywords.get("hostaddr") or "the default socket").split(",")
        ports = str(keywords.get("port") or "5432").split(",")
        shown = ",".join(
            f"{host}:{ports[index] if len(ports) == len(hosts) else ports[0]}" for index, host in enumerate(hosts)
        )
        return f"{keywords['user']}@{shown}/{keywords['dbname']}"


# -- kinds: how a value is parsed, checked, shown and documented -------------------------------------------


class Kind(Protocol):
    """What a setting's values are: `parse` the environment's text, `check` a value built directly (None when
    fine), `show` a value as an operator would write it, and `allowed` says what is accepted, for the README."""

    def parse(self, raw: str) -> Any: ...

    def check(self, value: Any) -> str | None: ...

    def show(self, value: Any) -> str: ...

    @property
    def allowed(self) -> str: ...


def _whole_number(raw: str) -> int:
    try:
        return int(raw.strip(), 10)
    except ValueError:
        raise ValueError("not a whole number") from None


@dataclass(frozen=True, slots=True)
class Whole:
    """A whole number from `low` to `high`, read from text by `read` and written back by `spell`: plain
    numbers by default, durations (milliseconds) with `duration()`, sizes (bytes) with `size()`."""

    low: int
    high: int
    read: Callable[[str], int] = _whole_number
    spell: Callable[[int], str] = str

    def parse(self, raw: str) -> int:
        try:
            value = self.read(raw)
        except ValueError as exc:
            raise ValueError(
                str(exc) if "\nhint:" in str(exc) else f"{exc}\nhint: write one from {self.allowed}"
            ) from None
        problem = self.check(value)
        if problem:
            raise ValueError(problem)
        return value

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            return f"must be between {self.spell(self.low)} and {self.spell(self.high)}"
        return None

    def show(self, value: Any) -> str:
        return self.spell(value)

    @property
    def allowed(self) -> str:
        return f"{self.spell(self.low)} to {self.spell(self.high)}"


def _workers_read(raw: str) -> int:
    return 0 if raw.strip().lower() == "auto" else _whole_number(raw)


def _workers_spell(value: int) -> str:
    return "auto" if value == 0 else str(value)


def duration(low: int, high: int) -> Whole:
    """A duration with its unit (`250ms`, `5s`, `2m`), kept as milliseconds from `low` to `high`."""
    return Whole(low, high, to_milliseconds, show_milliseconds)


def size(low: int, high: int) -> Whole:
    """A size in bytes or IEC units (`4096`, `256KiB`, `1MiB`), kept as bytes from `low` to `high`."""
    return Whole(low, high, to_bytes, show_bytes)


@dataclass(frozen=True, slots=True)
class Flag:
    """true or false (also 1/0, yes/no, on/off)."""

    allowed: str = "true, false"

    def parse(self, raw: str) -> bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError("not a boolean\nhint: write true or false")

    def check(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"

    def show(self, value: Any) -> str:
        return str(value).lower()


@dataclass(frozen=True, slots=True)
class OneOf:
    """One word of `choices` (upper-cased first when `upper`)."""

    choices: tuple[str, ...]
    upper: bool = False

    def parse(self, raw: str) -> str:
        value = raw.strip().upper() if self.upper else raw.strip()
        problem = self.check(value)
        if problem:
            raise ValueError(problem)
        return value

    def check(self, value: Any) -> str | None:
        return None if value in self.choices else f"must be one of {self.allowed}"

    def show(self, value: Any) -> str:
        return str(value)

    @property
    def allowed(self) -> str:
        return ", ".join(self.choices)


@dataclass(frozen=True, slots=True)
class Text:
    """Free text, parsed by `reader` (which raises ValueError); `allowed` documents it. Values built
    directly are only checked for being non-empty when `required`."""

    reader: Callable[[str], Any]
    allowed: str
    required: bool = False

    def parse(self, raw: str) -> Any:
        return self.reader(raw)

    def check(self, value: Any) -> str | None:
        return "must not be empty" if self.required and not str(value).strip() else None

    def show(self, value: Any) -> str:
        return ",".join(value) if isinstance(value, tuple) else str(value)


# -- parsers of text kinds -------------------------------------------------------------------------------------


def _text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _secret(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def _rootcert(raw: str) -> str:
    """`system` (the trusted roots of the OS) or a readable file of CA certificates (PEM)."""
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty\nhint: unset it for libpq's default (~/.postgresql/root.crt)")
    if value == "system":
        return value
    try:
        with Path(value).open("rb"):
            pass
    except OSError as exc:
        raise ValueError(
            f"unable to read the CA file: {exc.strerror or exc}\n"
            "hint: mount the CA certificate there (the stack's: compose/secrets/ca.crt as /run/secrets/tls_ca_cert), "
            "or write `system` for the OS's trusted roots"
        ) from None
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_api_keys(raw: str) -> tuple[KeyEntry, ...]:
    """The key file's entries (`pgmcp.keys`): hashed keys with scopes and expiry, or plain `name:key` lines.
    Problems name the line, never the key."""
    return parse_entries(raw, frozenset(TOOLS))


def _public_url(raw: str) -> str:
    """`https://host[:port]` (http only for a loopback host): where clients reach the endpoint."""
    value = raw.strip().rstrip("/")
    if not value:
        return ""
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path or parsed.query:
        raise ValueError(
            "not scheme://host[:port] (no path: the endpoint is <url>/mcp)\nhint: e.g. https://mcp.example.com"
        )
    if parsed.scheme == "http" and parsed.hostname not in _LOOPBACK:
        raise ValueError(
            "a public URL must be https: tokens and keys would cross the network in clear text\n"
            "hint: put the TLS front door in front (`make up PROFILE=tls`) and write https://"
        )
    return value.lower()


def _issuer(raw: str) -> str:
    """An authorization server's issuer identifier: https, or http on a loopback host (tests, development)."""
    value = raw.strip()
    if not value:
        return ""
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise ValueError("not an issuer URL (scheme://host[:port][/path])\nhint: e.g. https://login.example.com")
    if parsed.scheme == "http" and parsed.hostname not in _LOOPBACK:
        raise ValueError("must be https (a JWKS fetched in clear text could be replaced on the way)")
    return value


def _ca_cert(raw: str) -> str:
    """A readable file of CA certificates (PEM) that verify the authorization server's TLS certificate."""
    value = raw.strip()
    if not value:
        return ""
    try:
        ssl.create_default_context(cafile=value)
    except ssl.SSLError as exc:  # before OSError, of which it is one
        raise ValueError(
            f"not PEM CA certificates ({exc.reason or exc})\nhint: give the CA's certificate, PEM"
        ) from None
    except OSError as exc:
        raise ValueError(
            f"unable to read the CA file: {exc.strerror or exc}\nhint: mount the authorization server's CA "
            "certificate there (docs: services/mcp/README.md, Remote access), or unset it for the system's roots"
        ) from None
    return value


def _schema_scopes(raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`group=schema,schema;group=schema`: the scope `pg:schema:<group>` lets a token read those schemas."""
    groups: list[tuple[str, tuple[str, ...]]] = []
    for part in filter(None, (item.strip() for item in raw.split(";"))):
        group, separator, names = part.partition("=")
        schemas = tuple(filter(None, (name.strip() for name in names.split(","))))
        if not separator or not re.fullmatch(r"[a-z0-9_-]{1,40}", group.strip()) or not schemas:
            raise ValueError(
                f"{part!r} is not group=schema[,schema] (a group is lowercase letters, digits, '_' or '-')\n"
                "hint: e.g. sales=shop,reporting;hr=hr gives the scopes pg:schema:sales and pg:schema:hr"
            )
        bad = [name for name in schemas if not _IDENTIFIER.match(name)]
        if bad:
            raise ValueError(f"not a schema name: {', '.join(map(repr, bad))}")
        groups.append((group.strip(), schemas))
    group_names = [group for group, _ in groups]
    if len(set(group_names)) != len(group_names):
        raise ValueError("a group is named twice")
    return tuple(groups)


def _algorithms(raw: str) -> tuple[str, ...]:
    items = _csv(raw)
    bad = [item for item in items if item not in OAUTH_ALGORITHMS]
    if bad:
        raise ValueError(
            f"not an accepted signing algorithm: {', '.join(bad)} (accepted: {', '.join(OAUTH_ALGORITHMS)}; "
            "never none, never HS* with a public key)"
        )
    if not items:
        raise ValueError("must name at least one algorithm")
    return items


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

Compose = Literal["pass", "stack", "never"]
"""How compose/compose.yaml hands a setting to the container: `pass` from compose/.env with the server's own
default (the generated block), `stack` a value the stack fixes itself, `never` deliberately not at all."""


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: where its value goes, how it is parsed, and what the README says about it.
    `old_env` is a deprecated name holding the same duration as bare milliseconds, still read for a release."""

    env: str
    field: str
    kind: Kind
    help: str
    compose: Compose = "pass"
    secret: bool = False
    file_variant: bool = False
    default_doc: str | None = None
    old_env: str | None = None
    connection: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """Every environment name this setting answers to."""
        file_name = (f"{self.env}_FILE",) if self.file_variant else ()
        return (self.env, *file_name, *((self.old_env,) if self.old_env else ()))


_PORT = Whole(1, 65535)


def _fixed_by_stack(env: str, field: str, allowed: str, meaning: str, *, connection: bool = False) -> Variable:
    """A required text setting that the Compose stack sets itself (where the database is, where to listen)."""
    return Variable(env, field, Text(_text, allowed, required=True), meaning, compose="stack", connection=connection)


# A sanity bound only: startup checks the pool against the role's, the database's and the server's real limits.
_POOL_SIZE_LIMIT = 1000
URL = "MCP_DATABASE_URL"
PASSWORD = "MCP_DATABASE_PASSWORD"
CONNECT_TIMEOUT = "MCP_DATABASE_CONNECT_TIMEOUT"
EXAMPLE_URL = "postgresql://mcp_reader@db.example.com:5432/app?sslmode=verify-full&sslrootcert=/run/secrets/db_ca.crt"

VARIABLES: tuple[Variable, ...] = (
    Variable(
        URL,
        "database_url",
        Text(_secret, "a libpq URI or key=value string"),
        f"the whole connection to your own PostgreSQL, instead of the split MCP_DATABASE_* settings: `{EXAMPLE_URL}` "
        "(host lists, sslmode, sslrootcert as a file or `system`, sslcert/sslkey as secret files, "
        "target_session_attrs, load_balance_hosts, ...); it must name the user and the database; its password, if "
        "any, only if MCP_DATABASE_PASSWORD is unset; not connect_timeout (MCP_DATABASE_CONNECT_TIMEOUT) nor "
        "options (the server fixes its session settings). Prefer `MCP_DATABASE_URL_FILE`",
        compose="never",
        secret=True,
        file_variant=True,
        default_doc="(none: the split settings)",
    ),
    _fixed_by_stack(
        "MCP_DATABASE_HOST",
        "database_host",
        "a host name or address, or several, comma-separated",
        "PostgreSQL host name or address; a comma-separated list (standbys and the primary) with "
        "MCP_DATABASE_TARGET_SESSION_ATTRS and MCP_DATABASE_LOAD_BALANCE_HOSTS lets libpq choose the server",
        connection=True,
    ),
    Variable("MCP_DATABASE_PORT", "database_port", _PORT, "PostgreSQL port", compose="stack", connection=True),
    _fixed_by_stack(
        "MCP_DATABASE_NAME", "database_name", "a database name", "database the tools read", connection=True
    ),
    _fixed_by_stack(
        "MCP_DATABASE_USER",
        "database_user",
        "a role name",
        "login role; must be read-only (audited at startup: no superuser, no write grants, no CREATE/TEMP)",
        connection=True,
    ),
    Variable(
        "MCP_DATABASE_PASSWORD",
        "database_password",
        Text(_secret, "text"),
        "password of that role; prefer `MCP_DATABASE_PASSWORD_FILE` (a secret file)",
        compose="stack",
        secret=True,
        file_variant=True,
        default_doc="(required)",
    ),
    Variable(
        "MCP_DATABASE_SSLMODE",
        "database_sslmode",
        OneOf(SSL_MODES),
        "libpq `sslmode` for the connection; the stack sets `verify-full`, and its PostgreSQL refuses `disable`",
        connection=True,
    ),
    Variable(
        "MCP_DATABASE_SSLROOTCERT",
        "database_sslrootcert",
        Text(_rootcert, "a readable file, or `system`"),
        "libpq `sslrootcert`: the CA certificates that verify the server (`verify-ca`, `verify-full`), or `system` "
        "for the OS's trusted roots (only with `verify-full`); the stack sets its own CA",
        compose="stack",
        connection=True,
        default_doc="(libpq's: ~/.postgresql/root.crt)",
    ),
    Variable(
        "MCP_DATABASE_TARGET_SESSION_ATTRS",
        "database_target_session_attrs",
        OneOf(TARGET_SESSION_ATTRS),
        "libpq `target_session_attrs`: which server of the host list a connection accepts; `prefer-standby` reads "
        "from a standby and falls back to the primary when none answers (`make up PROFILE=scale` sets it)",
        compose="stack",
        connection=True,
    ),
    Variable(
        "MCP_DATABASE_LOAD_BALANCE_HOSTS",
        "database_load_balance_hosts",
        OneOf(LOAD_BALANCE_HOSTS),
        "libpq `load_balance_hosts`: `random` spreads connections over the host list instead of trying it in order",
        compose="stack",
        connection=True,
    ),
    Variable(
        "MCP_DATABASE_CONNECT_TIMEOUT",
        "database_connect_timeout_ms",
        duration(1000, 60_000),
        "timeout of one connection attempt (libpq counts whole seconds)",
        old_env="MCP_DATABASE_CONNECT_TIMEOUT_MS",
    ),
    Variable(
        "MCP_API_KEYS",
        "api_keys",
        Text(parse_api_keys, "key file lines"),
        "bearer keys for HTTP, one per line: `name:sha256:<digest>` with optional `tools=`, `max_rows=`, "
        "`expires=` (`make api-key` writes them), or `name:key`; prefer `MCP_API_KEYS_FILE`, which is read again "
        "when it changes. HTTP needs keys or `MCP_OAUTH_ISSUER`; unused by `--stdio`",
        compose="stack",
        secret=True,
        file_variant=True,
        default_doc="(none)",
    ),
    _fixed_by_stack(
        "MCP_BIND_HOST",
        "bind_host",
        "an address",
        "address the HTTP server listens on (the container sets 0.0.0.0; Host/Origin checks and keys stay on)",
    ),
    Variable("MCP_PORT", "port", _PORT, "HTTP port", compose="stack"),
    Variable(
        "MCP_ALLOWED_HOSTS",
        "allowed_hosts",
        Text(_hosts, "hosts, comma-separated", required=True),
        "accepted `Host` headers, comma-separated; a name without `:port` accepts any port (else 421)",
    ),
    Variable(
        "MCP_ALLOWED_ORIGINS",
        "allowed_origins",
        Text(_origins, "origins, comma-separated"),
        "accepted browser `Origin` headers, comma-separated; without `:port` any port (else 403). "
        "Requests without an Origin (non-browser clients) are accepted",
    ),
    Variable(
        "MCP_PUBLIC_URL",
        "public_url",
        Text(_public_url, "https://host[:port]"),
        "where clients reach the server (the TLS front door's address): its host and origin are accepted, and "
        "`<url>/mcp` is the OAuth resource identifier",
        default_doc="(none: loopback only)",
    ),
    Variable(
        "MCP_OAUTH_ISSUER",
        "oauth_issuer",
        Text(_issuer, "an issuer URL"),
        "accept OAuth 2.1 access tokens (JWT) from this authorization server, next to API keys; needs `MCP_PUBLIC_URL`",
        default_doc="(none: API keys only)",
    ),
    Variable(
        "MCP_OAUTH_JWKS_URL",
        "oauth_jwks_url",
        Text(_issuer, "a URL"),
        "the issuer's signing keys (JWKS); by default the `jwks_uri` of its metadata "
        "(`/.well-known/oauth-authorization-server`, else `openid-configuration`)",
        default_doc="(from the issuer's metadata)",
    ),
    Variable(
        "MCP_OAUTH_AUDIENCE",
        "oauth_audience",
        Text(str.strip, "a string"),
        "the `aud` a token must carry (RFC 8707: the resource it was issued for)",
        default_doc="(`MCP_PUBLIC_URL`/mcp)",
    ),
    Variable(
        "MCP_OAUTH_ALGORITHMS",
        "oauth_algorithms",
        Text(_algorithms, "algorithms, comma-separated"),
        "token signing algorithms accepted (asymmetric only)",
    ),
    Variable(
        "MCP_OAUTH_SCHEMA_SCOPES",
        "oauth_schema_scopes",
        Text(_schema_scopes, "group=schema,...;group=..."),
        "schema groups as OAuth scopes: with `sales=shop,reporting`, a token needs `pg:schema:sales` (or another "
        "group's scope) and reads only its groups' schemas",
        default_doc="(none: a token reads every schema the role may)",
    ),
    Variable(
        "MCP_OAUTH_CA_CERT",
        "oauth_ca_cert",
        Text(_ca_cert, "a readable file"),
        "the CA certificates (PEM) that verify the authorization server's TLS certificate, for one whose "
        "certificate no public CA issued; only these are trusted for it then",
        default_doc="(the system's trusted roots)",
    ),
    Variable("MCP_MAX_ROWS", "max_rows", Whole(1, 10_000), "most rows a `query` returns; a model may ask fewer"),
    Variable(
        "MCP_MAX_BYTES",
        "max_bytes",
        size(1024, 64 * 1024 * 1024),
        "most bytes of values one result returns (UTF-8 size of the cells)",
    ),
    Variable(
        "MCP_MAX_CELL_BYTES",
        "max_cell_bytes",
        size(64, 64 * 1024 * 1024),
        "longer text values are cut to this many bytes and counted in `truncated_cells`",
    ),
    Variable(
        "MCP_STATEMENT_TIMEOUT",
        "statement_timeout_ms",
        duration(100, 600_000),
        "server-side `statement_timeout` of every tool call; a watchdog cancels the query if it does not fire",
        old_env="MCP_STATEMENT_TIMEOUT_MS",
    ),
    Variable(
        "MCP_LOCK_TIMEOUT",
        "lock_timeout_ms",
        duration(10, 600_000),
        "server-side `lock_timeout`: how long a query may wait for a lock",
        old_env="MCP_LOCK_TIMEOUT_MS",
    ),
    Variable("MCP_POOL_MIN_SIZE", "pool_min_size", Whole(0, _POOL_SIZE_LIMIT), "connections kept open"),
    Variable(
        "MCP_POOL_MAX_SIZE",
        "pool_max_size",
        Whole(1, _POOL_SIZE_LIMIT),
        "most connections; startup checks it stays below the role's and the database's CONNECTION LIMIT and the "
        "server's max_connections (less its reserved slots), leaving one for a diagnosis",
    ),
    Variable(
        "MCP_POOL_TIMEOUT",
        "pool_timeout_ms",
        duration(100, 60_000),
        "how long a call waits for a connection before failing with a retry hint; below the statement timeout",
        old_env="MCP_POOL_TIMEOUT_MS",
    ),
    Variable(
        "MCP_MAX_REPLICA_LAG",
        "max_replica_lag_ms",
        Whole(0, 3_600_000, to_milliseconds, show_milliseconds),
        "keep off a standby that replays more than this behind the primary (checked every second, with a host "
        "list); `0`: no limit",
        default_doc="0 (no limit)",
    ),
    Variable(
        "MCP_MAX_CONCURRENCY_PER_KEY",
        "max_concurrency_per_key",
        Whole(1, 1000),
        "requests one API key may have in flight in this server (all its workers together); more get 429 with "
        "`Retry-After`. Behind a load balancer each replica counts its own",
    ),
    Variable(
        "MCP_WORKERS",
        "workers",
        Whole(0, 64, _workers_read, _workers_spell),
        "server processes sharing the port (`auto`: one per CPU the container may use); the pool sizes and the "
        "per-key limit are this server's totals, shared by its workers",
        default_doc="auto",
    ),
    Variable(
        "MCP_MAX_REQUEST_BYTES",
        "max_request_bytes",
        size(1024, 16 * 1024 * 1024),
        "largest accepted HTTP request body (else 413)",
    ),
    Variable(
        "MCP_ALLOW_EXPLAIN_ANALYZE",
        "allow_explain_analyze",
        Flag(),
        "let `explain` and `query` run `EXPLAIN ANALYZE` (still read-only, rolled back and under the timeout)",
    ),
    Variable(
        "MCP_SCHEMAS",
        "schemas",
        Text(_schemas, "schema names, comma-separated"),
        "schemas the discovery tools and resources show, comma-separated; grants, not this list, limit `query`",
        default_doc="(every schema the role may use, except pg_catalog and information_schema)",
    ),
    Variable("MCP_LOG_LEVEL", "log_level", OneOf(LOG_LEVELS, upper=True), "log level (logs are JSON lines)"),
    Variable(
        "MCP_DEV_ALLOW_PRIVILEGED_ROLE",
        "dev_allow_privileged_role",
        Flag(),
        "development only: start even when the role audit fails (logs a loud warning on every start)",
        compose="never",
    ),
    Variable(
        "MCP_ALLOW_PUBLIC_TEMP",
        "allow_public_temp",
        Flag(),
        "accept a reader that may create temporary tables only through PUBLIC (the PostgreSQL default): the "
        "audit logs a warning instead of refusing, read-only transactions and the guard still hold",
    ),
    Variable(
        "MCP_STARTUP_TIMEOUT",
        "startup_timeout_ms",
        duration(1000, 3_600_000),
        "how long startup waits for the database before exiting with status 5 (dependency unreachable)",
        old_env="MCP_STARTUP_TIMEOUT_MS",
    ),
)

_KNOWN_NAMES = frozenset(name for spec in VARIABLES for name in spec.names)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A problem for each `MCP_*` name that is no setting, old name or client variable: a typo would silently
    leave a security setting at its default, so it stops the server, with the nearest name as a hint."""
    problems = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in _KNOWN_NAMES or name in CLIENT_VARIABLES:
            continue
        close = difflib.get_close_matches(name, sorted(_KNOWN_NAMES), n=1)
        hint = f"did you mean {close[0]}?" if close else "every setting is listed in services/mcp/README.md"
        problems.append(f"{name} is not a setting of pgmcp\nhint: {hint}")
    return problems


def default_values() -> dict[str, Any]:
    """Every `Settings` field's default, by field name."""
    return {item.name: item.default for item in fields(Settings)}


def _read_raw(spec: Variable, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The name the value was found under and its raw text, from `X`, the file named by `X_FILE`, or the
    deprecated name; None when unset."""
    value = environ.get(spec.env)
    old = environ.get(spec.old_env) if spec.old_env else None
    if spec.old_env and old is not None:
        if value is not None:
            raise ValueError(
                f"both {spec.env} and {spec.old_env} are set\nhint: keep {spec.env}; {spec.old_env} is its old name"
            )
        if not old.strip().isdigit():
            raise ValueError(
                f"{spec.old_env}={old!r} is invalid: not a whole number of milliseconds\n"
                f"hint: write {spec.env} with a unit instead, e.g. {spec.env}=5s"
            )
        return spec.old_env, old
    if not spec.file_variant:
        return None if value is None else (spec.env, value)
    file_name = environ.get(f"{spec.env}_FILE")
    if value is not None and file_name is not None:
        raise ValueError(f"both {spec.env} and {spec.env}_FILE are set (but are exclusive)\nhint: keep one")
    if file_name is None:
        return None if value is None else (spec.env, value)
    path = Path(file_name)
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"unable to read {spec.env}_FILE={file_name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"unable to read {spec.env}_FILE={file_name}: not UTF-8 text") from None
    return spec.env, content.removesuffix("\n").removesuffix("\r")


# -- MCP_DATABASE_URL: the rules pgbackup applies to BACKUP_DATABASE_URL (docs/conventions.md) ------------------

# What libpq shows as "*" (a password field): redacted from every message.
SECRET_KEYWORDS = frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults() if option.dispchar == b"*")
_FIXED_KEYWORDS = {
    "connect_timeout": f"{CONNECT_TIMEOUT} sets it for every connection",
    "options": "the server fixes its session settings (read-only, timeouts, role) itself, and options could "
    "change them",
}
_PROBE_HOST = "/nonexistent-pgmcp-probe"
_PROBE_REACHED = f'connection to server on socket "{_PROBE_HOST}/.s.PGSQL.'
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<user>[^:@/]*):(?P<password>[^@/]*)@")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<netloc>[^/]*)(?P<path>/[^?]*)?")


def _given_name(environ: Mapping[str, str], name: str) -> str:
    """`name`, or `name_FILE` when that is the one set: the variable a message names."""
    return name if environ.get(name, "").strip() or not environ.get(f"{name}_FILE", "").strip() else f"{name}_FILE"


def _url_name(environ: Mapping[str, str]) -> str | None:
    """MCP_DATABASE_URL or MCP_DATABASE_URL_FILE, whichever is set (non-empty); None without a URL."""
    if environ.get(URL, "").strip() or environ.get(f"{URL}_FILE", "").strip():
        return _given_name(environ, URL)
    return None


def _url_rules(environ: Mapping[str, str], url_name: str, password_set: bool) -> list[str]:
    """The rules between the URL and the other settings: no split connection setting beside it (an empty one
    counts as unset), a password in one place only."""
    problems = []
    conflicting = [spec.env for spec in VARIABLES if spec.connection and environ.get(spec.env, "").strip()]
    if conflicting:
        listed = ", ".join(conflicting)
        problems.append(
            f"both {url_name} and {listed} are set (but are exclusive)\n"
            f"hint: the URL is the whole connection: put those values into it (e.g. {EXAMPLE_URL}) "
            f"and unset {listed}, or unset {url_name}"
        )
    url = environ.get(URL) or ""
    if not url and environ.get(f"{URL}_FILE"):
        try:
            url = Path(environ[f"{URL}_FILE"]).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return problems  # reported by the setting itself
    try:
        in_url = "password" in conninfo_to_dict(url.strip())
    except psycopg.ProgrammingError:
        return problems  # reported by _check_url
    if in_url and password_set:
        problems.append(
            f"both a password in {url_name} and {_given_name(environ, PASSWORD)} are set (but are exclusive)\n"
            f"hint: remove the password from the URL and keep it in {PASSWORD}_FILE"
        )
    return problems


def url_keywords(url: str) -> dict[str, Any]:
    """The libpq keywords of a URL that `_check_url` accepted, without the empty ones."""
    return {key: value for key, value in conninfo_to_dict(url.strip()).items() if value not in (None, "")}


def _check_url(url: str) -> list[str]:
    """The URL's own problems, without connecting: libpq's parse error (no secret echoed), an unencoded @ or /
    in the user information, no user, no database, a keyword the server sets itself, or a value libpq refuses."""
    text = url.strip()
    try:
        keywords = url_keywords(text)
    except psycopg.ProgrammingError as exc:
        return [
            f"{URL}=<redacted> is invalid: {redact(text, str(exc).strip())}\n"
            f"hint: write a libpq URI ({EXAMPLE_URL}) or key=value pairs (host=... user=... dbname=...)"
        ]
    uri = _URI.match(text)
    if uri is not None and (uri.group("netloc").count("@") > 1 or "@" in (uri.group("path") or "")):
        return [
            f"{URL}=<redacted> is invalid: an @ or / in its user or password is not percent-encoded, so libpq "
            "reads part of the password as the host, port or database\n"
            "hint: percent-encode them in the URL: @ as %40, / as %2F, : as %3A"
        ]
    problems = []
    for keyword, setting in (("user", "MCP_DATABASE_USER"), ("dbname", "MCP_DATABASE_NAME")):
        if keyword not in keywords:
            what = "user" if keyword == "user" else "database"
            problems.append(
                f"{URL} names no {what} ({setting} does not apply with a URL)\n"
                f"hint: put the {'role' if keyword == 'user' else 'database'} in the URL: {EXAMPLE_URL}"
            )
    if "connect_timeout" in keywords:
        seconds_text = keywords["connect_timeout"]
        problems.append(
            f"{URL} sets connect_timeout={seconds_text}, which {CONNECT_TIMEOUT} sets for every connection\n"
            f"hint: remove connect_timeout from the URL and set {CONNECT_TIMEOUT}={seconds_text}s"
        )
    if "options" in keywords:
        problems.append(
            f"{URL} sets options, but {_FIXED_KEYWORDS['options']}\n"
            "hint: remove options from the URL; a session default the database needs goes on the role "
            "(ALTER ROLE ... SET ...), which the startup audit then checks"
        )
    if keywords.get("target_session_attrs") == "read-write":
        problems.append(
            f"{URL} sets target_session_attrs=read-write, which no session of the read-only reader role "
            "satisfies (its default_transaction_read_only is on, so libpq finds every server read-only)\n"
            "hint: write target_session_attrs=primary to reach the primary (or standby, prefer-standby, any)"
        )
    if problems:
        return problems
    reason = check_keywords({key: str(value) for key, value in keywords.items() if key != "password"})
    if reason is not None:
        return [
            f"{URL}=<redacted> is invalid: {redact(text, reason)}\n"
            "hint: fix that parameter of the URL (libpq's connection parameters and their values)"
        ]
    return []


def check_keywords(keywords: dict[str, str]) -> str | None:
    """libpq's own verdict on the keywords' values, without connecting: None when it accepts them, else its
    message. Every host is replaced by a socket directory that does not exist, so nothing is resolved or
    contacted; libpq validates every option before its first connection attempt."""
    probe = {key: value for key, value in keywords.items() if key not in ("host", "hostaddr")}
    hosts = (keywords.get("host") or keywords.get("hostaddr") or "").split(",")
    probe["host"] = ",".join(_PROBE_HOST for _ in hosts)
    conn = pq.PGconn.connect_start(make_conninfo(**probe).encode())
    try:
        message = conn.get_error_message().strip()
    finally:
        conn.finish()
    if not message:
        return None
    for attempt in message.split(_PROBE_REACHED)[1:]:
        reason = attempt.partition(" failed: ")[2]
        if not reason.startswith("No such file or directory"):
            return reason.splitlines()[0]
    return None if message.startswith(_PROBE_REACHED) else message.splitlines()[0]


def redact(text: str, message: str) -> str:
    """libpq's `message` about the connection string `text`, with every secret of `text` (the URI's password,
    `password=`, `sslpassword=`, ... in key/value or query form) replaced by <redacted>."""
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


def _check_values(values: Mapping[str, Any]) -> list[str]:
    """Each value against its kind (parsers already did that for env values), then the cross-field rules."""
    problems: list[str] = []
    for spec in VARIABLES:
        problem = spec.kind.check(values[spec.field])
        if problem:
            problems.append(f"{spec.env}={spec.kind.show(values[spec.field])!r} is invalid: {problem}")
    if problems:
        return problems  # cross-field rules compare values that are known to be in range
    if values["database_url"]:
        problems.extend(_check_url(values["database_url"]))
    duration = show_milliseconds
    if values["database_sslrootcert"] == "system" and values["database_sslmode"] != "verify-full":
        problems.append(
            f"MCP_DATABASE_SSLROOTCERT=system needs MCP_DATABASE_SSLMODE=verify-full, not {values['database_sslmode']}"
            "\nhint: a public CA signs certificates for anyone's names: only the name check makes it safe"
        )
    if values["pool_min_size"] > values["pool_max_size"]:
        problems.append(
            f"MCP_POOL_MIN_SIZE={values['pool_min_size']} is above MCP_POOL_MAX_SIZE={values['pool_max_size']}\n"
            "hint: lower the minimum"
        )
    if values["workers"] > values["pool_max_size"]:
        problems.append(
            f"MCP_WORKERS={values['workers']} is more than MCP_POOL_MAX_SIZE={values['pool_max_size']}, which the "
            "workers share: each needs a connection of its own\nhint: raise MCP_POOL_MAX_SIZE to at least "
            f"{values['workers']}, or lower MCP_WORKERS"
        )
    if values["pool_timeout_ms"] >= values["statement_timeout_ms"]:
        problems.append(
            f"MCP_POOL_TIMEOUT={duration(values['pool_timeout_ms'])} must be below MCP_STATEMENT_TIMEOUT="
            f"{duration(values['statement_timeout_ms'])}\nhint: lower it, so an unavailable database fails a call "
            "quickly"
        )
    if values["lock_timeout_ms"] > values["statement_timeout_ms"]:
        problems.append(
            f"MCP_LOCK_TIMEOUT={duration(values['lock_timeout_ms'])} is above MCP_STATEMENT_TIMEOUT="
            f"{duration(values['statement_timeout_ms'])}: it would never fire\nhint: lower it"
        )
    if values["oauth_issuer"] and not values["public_url"]:
        problems.append(
            "MCP_OAUTH_ISSUER needs MCP_PUBLIC_URL: the resource identifier tokens are issued for, and the address "
            "of the metadata a 401 points clients at\nhint: set MCP_PUBLIC_URL=https://<the address clients use>"
        )
    for name in ("oauth_jwks_url", "oauth_audience", "oauth_schema_scopes", "oauth_ca_cert"):
        if values[name] and not values["oauth_issuer"]:
            problems.append(f"MCP_{name.upper()} is set but MCP_OAUTH_ISSUER is not\nhint: set both, or neither")
    if values["max_cell_bytes"] > values["max_bytes"]:
        problems.append(
            f"MCP_MAX_CELL_BYTES={show_bytes(values['max_cell_bytes'])} is above MCP_MAX_BYTES="
            f"{show_bytes(values['max_bytes'])}: one cell could never be returned whole\nhint: lower it"
        )
    return problems


__all__ = [
    "DEAD_PEER_KEYWORDS",
    "CLIENT_VARIABLES",
    "URL",
    "VARIABLES",
    "Flag",
    "Kind",
    "OneOf",
    "Settings",
    "Text",
    "Variable",
    "Whole",
    "default_values",
    "duration",
    "parse_api_keys",
    "size",
    "unknown_variables",
]
