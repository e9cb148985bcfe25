"""Where pgbackup connects: the source server as one set of libpq keywords, read from `BACKUP_DATABASE_URL` (a
libpq URI or key/value string) or from the split `BACKUP_PG*` settings, and handed unchanged to the Python
connections and to pg_dump, pg_dumpall and pg_restore.

The client programs get the connection as `--dbname=<conninfo>`, built by psycopg's `make_conninfo` from the
same keywords the Python connections use, with only the database name replaced. Not as PG* environment
variables: libpq has none for several keywords (keepalives, keepalives_idle, tcp_user_timeout,
fallback_application_name, ...), so a URL with them would reach the Python connections but not pg_dump. The
conninfo never holds the password: that goes through PGPASSWORD in the child's environment (readable only by
its user, while argv is readable by every user of the machine in /proc). The other keywords libpq itself marks
secret (`sslpassword`, `oauth_client_secret`) have no environment variable, so a URL with one is refused at
config time rather than put on a command line.

Once a connection is open, `pinned()` names the one server it reached (host, resolved address, port): a host
list or `load_balance_hosts=random` must not send pg_dump to another server than the one whose snapshot it
imports, nor pg_restore to another server than the one where the staging database was created.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from psycopg import pq
from psycopg.conninfo import make_conninfo

APPLICATION_NAME = "pgbackup"
# What libpq shows as "*" (a password field): never on a command line, never in a log or a manifest.
SECRET_KEYWORDS = frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults() if option.dispchar == b"*")
_PROBE_HOST = "/nonexistent-pgbackup-probe"
_PROBE_REACHED = f'connection to server on socket "{_PROBE_HOST}/.s.PGSQL.'


@dataclass(frozen=True, slots=True)
class Target:
    """The source server: libpq `keywords` without the password, the `password` apart, and where each keyword was
    set (`origin`: the setting to name in a message). `connect_timeout` is BACKUP_PGCONNECT_TIMEOUT in seconds."""

    keywords: tuple[tuple[str, str], ...]
    password: str | None = field(default=None, repr=False)
    connect_timeout: int = 10
    url: str | None = None  # the URL setting's name (BACKUP_DATABASE_URL or its _FILE) when the URL gave it
    password_origin: str | None = None  # the setting that gave the password, if any
    split_names: tuple[tuple[str, str], ...] = ()  # libpq keyword -> split setting, for messages

    def get(self, keyword: str) -> str:
        return dict(self.keywords).get(keyword, "")

    @property
    def user(self) -> str:
        return self.get("user")

    @property
    def dbname(self) -> str:
        return self.get("dbname")

    @property
    def label(self) -> str:
        """`host:port` of each server the keywords name (a list for a host list), for messages."""
        hosts = (self.get("host") or self.get("hostaddr")).split(",")
        ports = self.get("port").split(",")
        shown = []
        for index, host in enumerate(hosts):
            port = ports[index] if len(ports) == len(hosts) else ports[0]
            shown.append(f"{host or 'the default socket'}:{port or '5432'}")
        return ",".join(shown)

    def where(self, *keywords: str) -> str:
        """Where an operator changes `keywords`: `host/port in BACKUP_DATABASE_URL`, the split settings declared
        for them, or BACKUP_DATABASE_URL for a keyword no split setting exists for."""
        if self.url is not None:
            return f"{'/'.join(keywords)} in {self.url}"
        names = dict(self.split_names)
        return ", ".join(names.get(keyword) or f"{keyword} in BACKUP_DATABASE_URL" for keyword in keywords)

    def setting(self, keyword: str, value: str) -> str:
        """How to give `keyword` the value `value`: `sslmode=prefer in BACKUP_DATABASE_URL`, `BACKUP_PGSSLMODE=prefer`
        once that split setting is declared, or BACKUP_DATABASE_URL for a keyword no split setting exists for."""
        if self.url is not None:
            return f"{keyword}={value} in {self.url}"
        name = dict(self.split_names).get(keyword)
        return f"{name}={value}" if name else f"{keyword}={value} in BACKUP_DATABASE_URL"

    def params(self, database: str | None = None) -> dict[str, str]:
        """libpq keywords for `database` (default: the URL's or BACKUP_PGDATABASE's), without the password."""
        params = dict(self.keywords)
        if database is not None:
            params["dbname"] = database
        params.setdefault("application_name", APPLICATION_NAME)
        params["connect_timeout"] = str(self.connect_timeout)
        return params

    def conninfo(self, database: str | None = None) -> str:
        """The key/value conninfo of `params()`, quoted by psycopg: what a client program gets as --dbname."""
        return make_conninfo(**self.params(database))

    def pinned(self, host: str, hostaddr: str, port: int) -> Target:
        """This target narrowed to the one server a connection reached (`conn.info.host/hostaddr/port`)."""
        keywords = {key: value for key, value in self.keywords if key not in ("host", "hostaddr", "port")}
        keywords.pop("load_balance_hosts", None)
        keywords.update(host=host, port=str(port))
        if hostaddr:  # TCP: the address it resolved to, so that DNS cannot pick another one (verify-full uses host)
            keywords["hostaddr"] = hostaddr
        return replace(self, keywords=tuple(keywords.items()))


def check_keywords(keywords: dict[str, str]) -> str | None:
    """libpq's own verdict on the keywords' values, without connecting: None when it accepts them, else its
    message (an sslmode it does not know, ports that do not match the hosts, sslrootcert=system with a weak
    sslmode, ...). Every host is replaced by a socket directory that does not exist, so nothing is resolved
    or contacted; libpq validates every option before its first connection attempt, and a few (keepalives)
    at that attempt, which then fails on the missing socket."""
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
