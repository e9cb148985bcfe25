"""failures.diagnose on libpq's own texts: each cause has its kind, whether retrying can help, and a hint naming
the setting to change (the URL's parameter, or the split setting declared for it).

The texts are what psycopg 3.3 with libpq 18 raised: against the fast tier's native server (password, database,
no password, sslmode=require, refused, a host list, DNS, a missing socket), against a TLS stand-in that answers
PostgreSQL's SSLRequest with a certificate for db.example.com signed by a throwaway CA (wrong CA, host name
mismatch, a missing sslrootcert file), and libpq's or the server's message formats where the fast tier has no
server to provoke them (pg_hba.conf, client certificates, standby, startup). The stack tier's TLS server
checks the certificate ones end to end."""

from __future__ import annotations

import pytest

from devtools.paths import REPO
from pgbackup.config import SPECS, Settings
from pgbackup.db import connect_error
from pgbackup.failures import diagnose
from pgbackup.target import Target

AT = 'connection failed: connection to server at "127.0.0.1", port 45397 failed: '
URL_TARGET = Settings.from_env(
    {"BACKUP_DATABASE_URL": "postgresql://backup_operator@db.example.com:5432/postgres?sslmode=verify-full"}
).target
SPLIT_TARGET = Settings.from_env({"BACKUP_PGPASSWORD": "x"}).target


def split_setting(keyword: str, value: str) -> str:
    """How the split configuration sets `keyword`: its declared split setting, else the URL."""
    names = [spec.name for spec in SPECS if spec.connection and spec.field == keyword]
    return f"{names[0]}={value}" if names else f"{keyword}={value} in BACKUP_DATABASE_URL"


PERMANENT = [
    (
        "untrusted-certificate",
        f"{AT}SSL error: certificate verify failed",
        "the server's certificate is not signed by a CA that sslrootcert holds",
        "set sslrootcert=/path/to/ca.crt in BACKUP_DATABASE_URL: the CA certificate that signed the server's",
    ),
    (
        "host-name-mismatch",
        f'{AT}server certificate for "db.example.com" (and 1 other name) does not match host name "127.0.0.1"',
        "the server's certificate is not issued for the host name connected to (127.0.0.1; it names db.example.com)",
        "connect with a host name the certificate names (host in BACKUP_DATABASE_URL)",
    ),
    (
        "host-name-mismatch",
        f'{AT}server certificate for "db.example.com" does not match host name "localhost"',
        "(localhost; it names db.example.com)",
        "sslmode=verify-ca checks the CA but not the name",
    ),
    (
        "ca-file-missing",
        f'{AT}root certificate file "/run/secrets/db_ca.crt" does not exist\nEither provide the file, use the '
        "system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate "
        "verification.",
        "the CA certificate file sslrootcert names cannot be read (/run/secrets/db_ca.crt)",
        "mount the CA certificate there, or correct sslrootcert in BACKUP_DATABASE_URL",
    ),
    (
        "server-without-tls",
        f"{AT}server does not support SSL, but SSL was required",
        "the server does not offer TLS, but sslmode=verify-full requires it",
        "set sslmode=prefer in BACKUP_DATABASE_URL",
    ),
    (
        "password-refused",
        f'{AT}FATAL:  password authentication failed for user "backup_operator"',
        "the server refused the password of role backup_operator",
        "set BACKUP_PGPASSWORD_FILE to a file holding backup_operator's password",
    ),
    (
        "password-missing",
        f"{AT}fe_sendauth: no password supplied",
        "the server asks for a password of role backup_operator and none is set",
        "or authenticate with a client certificate",
    ),
    (
        "no-pg-hba-entry",
        f'{AT}FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "backup_operator", database "postgres", '
        "SSL encryption",
        "pg_hba.conf lets no connection in from address 10.0.0.9 as backup_operator to postgres (SSL encryption)",
        "`hostssl postgres backup_operator 10.0.0.9/32 scram-sha-256`",
    ),
    (
        "database-missing",
        f'{AT}FATAL:  database "nosuch" does not exist',
        "the server has no database nosuch",
        "correct the database name (dbname in BACKUP_DATABASE_URL, or BACKUP_DATABASES)",
    ),
    (
        "role-missing",
        f'{AT}FATAL:  role "ghost" does not exist',
        "the server has no role ghost",
        "correct the role (user in BACKUP_DATABASE_URL)",
    ),
    (
        "client-certificate",
        f"{AT}FATAL:  connection requires a valid client certificate",
        "the client certificate is missing, unreadable or not accepted by the server",
        "check sslcert/sslkey in BACKUP_DATABASE_URL",
    ),
    (
        "client-certificate",
        'connection failed: could not open certificate file "/run/secrets/client.crt": No such file or directory',
        "the client certificate is missing",
        "the key mode 0600",
    ),
    (
        "no-connect-privilege",
        f'{AT}FATAL:  permission denied for database "app"\nDETAIL:  User does not have CONNECT privilege.',
        "role backup_operator may not connect to database app",
        "GRANT CONNECT ON DATABASE app TO backup_operator",
    ),
    (
        "invalid-parameter",
        'connection is bad: invalid sslmode value: "bogus"',
        "a connection parameter has a value libpq does not accept",
        "correct the parameter libpq names",
    ),
    (
        "invalid-parameter",
        f'{AT}FATAL:  unrecognized configuration parameter "+work_mem"',
        "a connection parameter has a value the server does not accept (in options)",
        "correct the parameter the message names (options in BACKUP_DATABASE_URL)",
    ),
]

TRANSIENT = [
    (
        "refused",
        'connection failed: connection to server at "127.0.0.1", port 39351 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?",
        "nothing accepts connections there (connection refused)",
        "start the server, or correct the host and port (host/port in BACKUP_DATABASE_URL)",
    ),
    ("timeout", "connection timeout expired", "no answer within BACKUP_PGCONNECT_TIMEOUT=10s", "firewalls"),
    (
        "unknown-host",
        "failed to resolve host 'no-such-host.invalid': [Errno -2] Name or service not known",
        "the host name does not resolve",
        "correct the host name (host in BACKUP_DATABASE_URL)",
    ),
    (
        "no-socket",
        'connection is bad: connection to server on socket "/nonexistent/.s.PGSQL.5432" failed: No such file or '
        "directory\n\tIs the server running locally and accepting connections on that socket?",
        "no server listens on that Unix socket",
        "start the server",
    ),
    (
        "not-ready",
        f"{AT}FATAL:  the database system is starting up",
        "the server answers but does not take this connection yet",
        "check max_connections",
    ),
    ("not-ready", f"{AT}FATAL:  sorry, too many clients already", "does not take this connection yet", "wait for it"),
    ("not-ready", f"{AT}server is in hot standby mode", "not in the state target_session_attrs asks for", "primary"),
    ("no-route", f"{AT}No route to host", "there is no route to the host", "check the network"),
]


CASES = [(True, *case) for case in PERMANENT] + [(False, *case) for case in TRANSIENT]


@pytest.mark.parametrize(
    ("permanent", "kind", "message", "reason", "hint"),
    CASES,
    ids=[f"{'permanent' if case[0] else 'retried'}-{case[1]}" for case in CASES],
)
def test_each_cause_has_its_kind_retry_reason_and_hint(
    permanent: bool, kind: str, message: str, reason: str, hint: str
) -> None:
    """`permanent`: retrying cannot fix it, so the command ends at once."""
    failure = diagnose(message, URL_TARGET)
    assert (failure.kind, failure.permanent) == (kind, permanent)
    assert reason in failure.reason
    assert any(hint in line for line in failure.hints), failure.hints


HOST_LIST = (
    'connection failed: connection to server at "127.0.0.1", port 45397 failed: FATAL:  password authentication '
    'failed for user "backup_operator"\nMultiple connection attempts failed. All failures were:\n'
    "- host: '127.0.0.1', port: '39351', hostaddr: '127.0.0.1': connection failed: connection to server at "
    '"127.0.0.1", port 39351 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP '
    "connections?\n- host: '127.0.0.1', port: '45397', hostaddr: '127.0.0.1': connection failed: connection to "
    'server at "127.0.0.1", port 45397 failed: FATAL:  password authentication failed for user "backup_operator"'
)


def test_a_host_that_answers_and_refuses_outweighs_one_that_is_down() -> None:
    assert diagnose(HOST_LIST, URL_TARGET).kind == "password-refused"
    down = HOST_LIST.replace('FATAL:  password authentication failed for user "backup_operator"', "Connection refused")
    assert (diagnose(down, URL_TARGET).kind, diagnose(down, URL_TARGET).permanent) == ("refused", False)


def test_an_unknown_failure_is_retried_as_before() -> None:
    failure = diagnose("connection failed: something libpq never said before", SPLIT_TARGET)
    assert (failure.kind, failure.permanent) == ("unknown", False)
    assert failure.hints == (
        "check the connection settings (BACKUP_PGHOST, BACKUP_PGPORT, BACKUP_PGUSER, BACKUP_PGDATABASE, "
        "BACKUP_PGSSLMODE, BACKUP_PGSSLROOTCERT), the password "
        "secret and the server's log",
    )


def test_hints_name_the_split_settings_without_a_url() -> None:
    """Without a URL a hint names the split setting declared for the parameter (BACKUP_PGSSLROOTCERT once it is
    declared), and the URL for a parameter no split setting exists for."""
    wrong_ca = diagnose(f"{AT}SSL error: certificate verify failed", SPLIT_TARGET)
    assert wrong_ca.hints[0].startswith(f"set {split_setting('sslrootcert', '/path/to/ca.crt')}: the CA")
    refused = diagnose(f"{AT}Connection refused", SPLIT_TARGET)
    assert refused.hints == ("start the server, or correct the host and port (BACKUP_PGHOST, BACKUP_PGPORT)",)
    password = diagnose(f'{AT}FATAL:  password authentication failed for user "backup_operator"', SPLIT_TARGET)
    assert password.hints[0].startswith("correct the password in BACKUP_PGPASSWORD (it must be backup_operator's)")


def test_the_error_says_where_whom_why_and_libpqs_words() -> None:
    message = f"{AT}SSL error: certificate verify failed"
    error = connect_error(URL_TARGET, "app", message)
    assert error.message == (
        "unable to connect to db.example.com:5432 database app as backup_operator: the server's certificate is not "
        f"signed by a CA that sslrootcert holds (no sslrootcert is set: libpq read ~/.postgresql/root.crt): {message}"
    )
    assert (error.kind, error.permanent, error.exit_code) == ("untrusted-certificate", True, 5)


def test_a_host_list_is_shown_host_by_host() -> None:
    target = Target((("host", "db1,db2"), ("port", "5432,6432"), ("user", "u"), ("dbname", "postgres")))
    assert target.label == "db1:5432,db2:6432"
    assert Target((("host", "db1,db2"), ("user", "u"))).label == "db1:5432,db2:5432"


def test_the_example_in_the_conventions_is_what_pgbackup_prints() -> None:
    text = (REPO / "docs" / "conventions.md").read_text()
    section = text[text.index("## Connection failures") :]
    example = section[section.index("```text\n") + len("```text\n") : section.index("\n```\n")]
    target = Settings.from_env(
        {
            "BACKUP_DATABASE_URL": "postgresql://backup_operator@db.example.com:5432/postgres"
            "?sslmode=verify-full&sslrootcert=/run/secrets/db_ca.crt"
        }
    ).target
    libpq = (
        'connection failed: connection to server at "203.0.113.7", port 5432 failed: SSL error: certificate verify '
        "failed"
    )
    assert example == f"pgbackup backup: error: {connect_error(target, 'postgres', libpq)}"
