"""What a failed connection to the database means, and what to do about it: the startup probe's verdict.

libpq's message is matched against the known causes, the ones retrying cannot fix first: a certificate signed by
a CA that sslrootcert does not hold, a certificate for another host name, an sslmode that needs TLS from a server
without it, a missing CA or client certificate file, a refused password or client certificate, no pg_hba.conf
line, a missing database or role, no CONNECT privilege, an invalid connection parameter. Those end startup at
once; the others (refused, timed out, unresolvable, no route, starting up, too many clients, a standby where a
primary is required) are retried until MCP_STARTUP_TIMEOUT. Either way the process exits with status 5
(UNREACHABLE), the cause and what to change, naming the setting that holds it: a keyword of MCP_DATABASE_URL, or
the split MCP_DATABASE_* setting. With a host list, libpq reports every host's failure: a host that answers and
refuses outweighs one that is down.

The same causes, kinds and patterns as pgbackup's `failures.py` (the services share no code: each image holds
one package); tests/fast/mcp/test_failures.py checks the two tables agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

URL = "MCP_DATABASE_URL"
PASSWORD_SETTING = "MCP_DATABASE_PASSWORD_FILE"
SPLIT_SETTINGS = (
    ("host", "MCP_DATABASE_HOST"),
    ("port", "MCP_DATABASE_PORT"),
    ("dbname", "MCP_DATABASE_NAME"),
    ("user", "MCP_DATABASE_USER"),
    ("sslmode", "MCP_DATABASE_SSLMODE"),
    ("sslrootcert", "MCP_DATABASE_SSLROOTCERT"),
)
"""libpq keyword -> the split setting that sets it (without MCP_DATABASE_URL)."""


@dataclass(frozen=True, slots=True)
class Target:
    """The connection as messages name it: the libpq `keywords` without the password, whether they came from
    MCP_DATABASE_URL (`url`), where the password came from, and MCP_DATABASE_CONNECT_TIMEOUT in seconds."""

    keywords: tuple[tuple[str, str], ...]
    connect_timeout: int
    url: str | None = None
    password_origin: str | None = None
    split_names: tuple[tuple[str, str], ...] = SPLIT_SETTINGS

    @classmethod
    def of(cls, conninfo: dict[str, Any], connect_timeout: int, *, from_url: bool, password_in_url: bool) -> Target:
        keywords = tuple((key, str(value)) for key, value in conninfo.items() if key != "password" and value)
        if from_url and password_in_url:
            origin: str | None = URL
        else:
            origin = PASSWORD_SETTING if conninfo.get("password") else None
        return cls(keywords, connect_timeout, URL if from_url else None, origin)

    def get(self, keyword: str) -> str:
        return dict(self.keywords).get(keyword, "")

    @property
    def user(self) -> str:
        return self.get("user")

    def where(self, *keywords: str) -> str:
        """Where an operator changes `keywords`: `host/port in MCP_DATABASE_URL`, or the split settings."""
        if self.url is not None:
            return f"{'/'.join(keywords)} in {self.url}"
        names = dict(self.split_names)
        return ", ".join(names.get(keyword) or f"{keyword} in {URL}" for keyword in keywords)

    def setting(self, keyword: str, value: str) -> str:
        """How to give `keyword` the value `value`: `sslmode=prefer in MCP_DATABASE_URL`, or
        `MCP_DATABASE_SSLMODE=prefer`, or MCP_DATABASE_URL for a keyword no split setting exists for."""
        if self.url is not None:
            return f"{keyword}={value} in {self.url}"
        name = dict(self.split_names).get(keyword)
        return f"{name}={value}" if name else f"{keyword}={value} in {URL}"


@dataclass(frozen=True, slots=True)
class Failure:
    """One cause: `kind` (a stable word, logged), whether retrying can help, the cause in words, what to do."""

    kind: str
    permanent: bool
    reason: str
    hints: tuple[str, ...]


Hints = Callable[[re.Match[str], Target], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class _Cause:
    kind: str
    permanent: bool
    pattern: re.Pattern[str]
    reason: Callable[[re.Match[str], Target], str]
    hints: Hints


def _password_hints(found: re.Match[str], target: Target) -> tuple[str, ...]:
    user = found.group("user")
    if target.password_origin is None:
        where = f"set MCP_DATABASE_PASSWORD_FILE to a file holding {user}'s password"
    elif target.url is not None and target.password_origin == target.url:
        where = f"correct the password in {target.url} (percent-encode @ : / ? # as %40 %3A %2F %3F %23)"
    else:
        where = f"correct the password in {target.password_origin} (it must be {user}'s)"
    return (
        f"{where}, or give the role that password on the server (ALTER ROLE {user} PASSWORD ...)",
        "the server says the same for a role that does not exist: check the user too",
    )


def _no_password_hints(found: re.Match[str], target: Target) -> tuple[str, ...]:
    return (
        f"set MCP_DATABASE_PASSWORD_FILE to a file holding {target.user}'s password, or authenticate with a client "
        "certificate (sslcert and sslkey in MCP_DATABASE_URL, and a cert line in pg_hba.conf)",
    )


def _hba_hints(found: re.Match[str], target: Target) -> tuple[str, ...]:
    address, user, database = found.group("address"), found.group("user"), found.group("database")
    return (
        f"add a line for it to the server's pg_hba.conf, e.g. `hostssl {database} {user} {address}/32 "
        "scram-sha-256`, and reload it (SELECT pg_reload_conf()); on a managed service, allow this address there",
        f"a `hostssl` line matches only TLS connections: set {target.setting('sslmode', 'verify-full')} (or require)",
    )


CAUSES: tuple[_Cause, ...] = (
    _Cause(
        "untrusted-certificate",
        True,
        re.compile(r"certificate verify failed"),
        lambda found, target: (
            "the server's certificate is not signed by a CA that sslrootcert holds "
            + (
                f"(sslrootcert={target.get('sslrootcert')})"
                if target.get("sslrootcert")
                else "(no sslrootcert is set: libpq read ~/.postgresql/root.crt)"
            )
        ),
        lambda found, target: (
            f"set {target.setting('sslrootcert', '/path/to/ca.crt')}: the CA certificate that signed the server's "
            "(a file mounted as a secret), or sslrootcert=system for a certificate from a public CA",
        ),
    ),
    _Cause(
        "host-name-mismatch",
        True,
        re.compile(
            r'server certificate for "(?P<names>[^"]*)"(?: \(and \d+ other names?\))? does not match host name '
            r'"(?P<host>[^"]*)"|could not get server\'s host name from server certificate'
        ),
        lambda found, target: (
            "the server's certificate is not issued for the host name connected to"
            + (f" ({found.group('host')}; it names {found.group('names')})" if found.group("host") else "")
        ),
        lambda found, target: (
            f"connect with a host name the certificate names ({target.where('host')}), or have the certificate "
            "issued for this name; sslmode=verify-ca checks the CA but not the name",
        ),
    ),
    _Cause(
        "server-without-tls",
        True,
        re.compile(r"server does not support SSL, but SSL was required"),
        lambda found, target: (
            f"the server does not offer TLS, but sslmode={target.get('sslmode') or 'require'} requires it"
        ),
        lambda found, target: (
            "turn TLS on at the server (ssl = on, with ssl_cert_file and ssl_key_file), or check that host and port "
            f"name the right server; only on a network you trust, set {target.setting('sslmode', 'prefer')}",
        ),
    ),
    _Cause(
        "ca-file-missing",
        True,
        re.compile(r'root certificate file "(?P<file>[^"]*)" does not exist|could not read root certificate file'),
        lambda found, target: (
            "the CA certificate file sslrootcert names cannot be read"
            + (f" ({found.group('file')})" if found.group("file") else "")
        ),
        lambda found, target: (
            f"mount the CA certificate there, or correct {target.where('sslrootcert')} (sslrootcert=system uses "
            "the system's trusted CAs)",
        ),
    ),
    _Cause(
        "client-certificate",
        True,
        re.compile(
            r"could not (?:open|read|load) (?:certificate|private key) file|private key file .* has group or world "
            r"access|certificate present, but not private key|connection requires a valid client certificate|"
            r"certificate authentication failed for user|alert (?:unknown ca|bad certificate|certificate required)"
        ),
        lambda found, target: "the client certificate is missing, unreadable or not accepted by the server",
        lambda found, target: (
            f"check {target.where('sslcert', 'sslkey')}: both files readable by pgmcp, the key "
            f"mode 0600, the certificate signed by a CA in the server's ssl_ca_file, and its CN the role "
            f"({target.user})",
        ),
    ),
    _Cause(
        "password-refused",
        True,
        re.compile(r'password authentication failed for user "(?P<user>[^"]*)"'),
        lambda found, target: f"the server refused the password of role {found.group('user')}",
        _password_hints,
    ),
    _Cause(
        "password-missing",
        True,
        re.compile(r"no password supplied"),
        lambda found, target: f"the server asks for a password of role {target.user} and none is set",
        _no_password_hints,
    ),
    _Cause(
        "no-pg-hba-entry",
        True,
        re.compile(
            r'(?:no pg_hba\.conf entry|pg_hba\.conf rejects connection) for host "(?P<address>[^"]*)", '
            r'user "(?P<user>[^"]*)", database "(?P<database>[^"]*)"(?:, (?P<encryption>[^\n]*))?'
        ),
        lambda found, target: (
            "the server's pg_hba.conf lets no connection in from address "
            f"{found.group('address')} as {found.group('user')} to {found.group('database')}"
            + (f" ({found.group('encryption')})" if found.group("encryption") else "")
        ),
        _hba_hints,
    ),
    _Cause(
        "database-missing",
        True,
        re.compile(r'database "(?P<database>[^"]*)" does not exist'),
        lambda found, target: f"the server has no database {found.group('database')}",
        lambda found, target: (f"correct the database name ({target.where('dbname')}), or create it",),
    ),
    _Cause(
        "role-missing",
        True,
        re.compile(r'role "(?P<role>[^"]*)" does not exist'),
        lambda found, target: f"the server has no role {found.group('role')}",
        lambda found, target: (f"correct the role ({target.where('user')}), or create it on the server",),
    ),
    _Cause(
        "no-connect-privilege",
        True,
        re.compile(r'permission denied for database "(?P<database>[^"]*)"'),
        lambda found, target: f"role {target.user} may not connect to database {found.group('database')}",
        lambda found, target: (f"GRANT CONNECT ON DATABASE {found.group('database')} TO {target.user}",),
    ),
    _Cause(
        "invalid-parameter",
        True,
        re.compile(
            r"invalid \S+ value|invalid integer value|invalid port number|could not match \d+ \S+ to \d+ hosts|"
            r"weak sslmode|invalid connection option|definition of service \"[^\"]*\" not found|"
            r"(?P<server>unrecognized configuration parameter|invalid value for parameter|parameter \"[^\"]*\" cannot "
            r"be changed)"
        ),
        lambda found, target: (
            "a connection parameter has a value "
            + ("the server does not accept (in options)" if found.group("server") else "libpq does not accept")
        ),
        lambda found, target: (
            f"correct the parameter the message names ({target.where('options')})"
            if found.group("server")
            else "correct the parameter libpq names",
        ),
    ),
    # retrying may help: the server, the network or the name service may come back
    _Cause(
        "refused",
        False,
        re.compile(r"Connection refused"),
        lambda found, target: "nothing accepts connections there (connection refused)",
        lambda found, target: (f"start the server, or correct the host and port ({target.where('host', 'port')})",),
    ),
    _Cause(
        "timeout",
        False,
        re.compile(r"timeout expired|timed out", re.IGNORECASE),
        lambda found, target: f"no answer within MCP_DATABASE_CONNECT_TIMEOUT={target.connect_timeout}s",
        lambda found, target: (
            "check the host, the port and the firewalls on the way (the server must allow this address); raise "
            "MCP_DATABASE_CONNECT_TIMEOUT on a slow network",
        ),
    ),
    _Cause(
        "unknown-host",
        False,
        re.compile(
            r"failed to resolve host|could not translate host name|Name or service not known|"
            r"Temporary failure in name resolution|No address associated with hostname"
        ),
        lambda found, target: "the host name does not resolve",
        lambda found, target: (f"correct the host name ({target.where('host')}), or the DNS it is looked up in",),
    ),
    _Cause(
        "no-route",
        False,
        re.compile(r"No route to host|Network is unreachable"),
        lambda found, target: "there is no route to the host",
        lambda found, target: ("check the network between pgmcp and the server (Compose networks, VPN, routes)",),
    ),
    _Cause(
        "no-socket",
        False,
        re.compile(r'on socket "[^"]*" failed: No such file or directory'),
        lambda found, target: "no server listens on that Unix socket",
        lambda found, target: (f"start the server, or set a host ({target.where('host')})",),
    ),
    _Cause(
        "not-ready",
        False,
        re.compile(
            r"the database system is (?:starting up|shutting down|in recovery mode|not (?:yet )?accepting "
            r"connections)|too many clients|remaining connection slots are reserved|server closed the connection "
            r"unexpectedly|server is in hot standby mode|server is not in hot standby mode|session is read-only|"
            r"session is not read-only"
        ),
        lambda found, target: (
            "the server answers but does not take this connection yet (starting, full, or not "
            "in the state target_session_attrs asks for)"
        ),
        lambda found, target: (
            "wait for it; if it stays so, check max_connections and, for a host list, which host is the primary",
        ),
    ),
)


def diagnose(message: str, target: Target) -> Failure:
    """The cause of libpq's `message` (every host's part of it): the first cause retrying cannot fix, else the
    first that retrying may fix, else an unknown one (retried, as any failure was before)."""
    for cause in CAUSES:
        found = cause.pattern.search(message)
        if found is not None:
            return Failure(cause.kind, cause.permanent, cause.reason(found, target), cause.hints(found, target))
    settings = target.url or ", ".join(name for _, name in target.split_names)
    return Failure(
        "unknown",
        False,
        "the connection failed",
        (f"check the connection settings ({settings}), the password secret and the server's log",),
    )
