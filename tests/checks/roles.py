"""What each role in the README's Roles table may and may not do, as data, shared by both tiers.

Each case runs one statement as one role in its own transaction (always rolled back) and expects either
success or a specific SQLSTATE. The fast tier runs them against the native server, the stack tier against
the Compose stack: the same init scripts must give the same privileges in both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import errors

OK = "ok"
INSUFFICIENT_PRIVILEGE = "42501"
READ_ONLY_TRANSACTION = "25006"


@dataclass(frozen=True)
class RoleCase:
    role: str
    what: str
    sql: str
    expect: str  # OK, or the SQLSTATE the server must answer with

    @property
    def id(self) -> str:
        return f"{self.role}: {self.what}"


ROLE_CASES = [
    # MCP reader: SELECT on the shop, nothing else
    RoleCase("mcp_reader", "reads shop tables", "SELECT count(*) FROM shop.orders", OK),
    RoleCase("mcp_reader", "reads the view", "SELECT count(*) FROM shop.order_summary", OK),
    RoleCase(
        "mcp_reader",
        "cannot INSERT even in a read-write transaction",
        "SET TRANSACTION READ WRITE; INSERT INTO shop.customers (email, full_name, country) "
        "VALUES ('x@example.com', 'x', 'DE')",
        INSUFFICIENT_PRIVILEGE,
    ),
    RoleCase(
        "mcp_reader",
        "sessions are read-only by default",
        "INSERT INTO shop.customers (email, full_name, country) VALUES ('x@example.com', 'x', 'DE')",
        READ_ONLY_TRANSACTION,
    ),
    RoleCase(
        "mcp_reader",
        "cannot CREATE in shop",
        "SET TRANSACTION READ WRITE; CREATE TABLE shop.evil (x int)",
        INSUFFICIENT_PRIVILEGE,
    ),
    RoleCase(
        "mcp_reader",
        "cannot CREATE in public",
        "SET TRANSACTION READ WRITE; CREATE TABLE public.evil (x int)",
        INSUFFICIENT_PRIVILEGE,
    ),
    RoleCase(
        "mcp_reader",
        "cannot create TEMP tables",
        "SET TRANSACTION READ WRITE; CREATE TEMP TABLE evil (x int)",
        INSUFFICIENT_PRIVILEGE,
    ),
    RoleCase("mcp_reader", "cannot read pg_authid", "SELECT rolpassword FROM pg_authid", INSUFFICIENT_PRIVILEGE),
    RoleCase(
        "mcp_reader", "cannot read server files", "SELECT pg_read_file('postgresql.conf')", INSUFFICIENT_PRIVILEGE
    ),
    RoleCase("mcp_reader", "cannot reload the server configuration", "SELECT pg_reload_conf()", INSUFFICIENT_PRIVILEGE),
    RoleCase(
        "mcp_reader", "cannot create schemas", "SET TRANSACTION READ WRITE; CREATE SCHEMA evil", INSUFFICIENT_PRIVILEGE
    ),
    # Backup operator: reads everything, writes nothing
    RoleCase(
        "backup_operator",
        "reads every shop table",
        "SELECT (SELECT count(*) FROM shop.customers) + (SELECT count(*) FROM shop.products) "
        "+ (SELECT count(*) FROM shop.orders) + (SELECT count(*) FROM shop.order_items)",
        OK,
    ),
    RoleCase(
        "backup_operator",
        "cannot INSERT",
        "INSERT INTO shop.customers (email, full_name, country) VALUES ('y@example.com', 'y', 'DE')",
        INSUFFICIENT_PRIVILEGE,
    ),
    RoleCase("backup_operator", "cannot CREATE in shop", "CREATE TABLE shop.evil (x int)", INSUFFICIENT_PRIVILEGE),
    # pg_read_all_data does include pg_authid: the backups still leave hashes out (--no-role-passwords).
    RoleCase("backup_operator", "cannot UPDATE", "UPDATE shop.products SET price = 0", INSUFFICIENT_PRIVILEGE),
    RoleCase("backup_operator", "cannot TRUNCATE", "TRUNCATE shop.order_items", INSUFFICIENT_PRIVILEGE),
    # App owner: DDL and DML on its schema, nothing cluster-wide
    RoleCase(
        "app_owner",
        "writes its schema",
        "INSERT INTO shop.customers (email, full_name, country) VALUES ('z@example.com', 'z', 'DE')",
        OK,
    ),
    RoleCase("app_owner", "changes its schema", "CREATE TABLE shop.scratch (x int); DROP TABLE shop.scratch", OK),
    RoleCase("app_owner", "cannot CREATE in public", "CREATE TABLE public.evil (x int)", INSUFFICIENT_PRIVILEGE),
    RoleCase("app_owner", "cannot read pg_authid", "SELECT rolpassword FROM pg_authid", INSUFFICIENT_PRIVILEGE),
]

ROLE_ATTRIBUTES_SQL = """
SELECT r.rolname, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
       r.rolconnlimit, coalesce(array_to_string(s.setconfig, ','), '') AS settings,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY g.rolname) AS member_of
FROM pg_roles r
LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
WHERE r.rolname IN ('app_owner', 'mcp_reader', 'backup_operator', 'replicator')
ORDER BY r.rolname
"""

DANGEROUS_ROLES = {"pg_read_server_files", "pg_write_server_files", "pg_execute_server_program", "pg_signal_backend"}


def run_case(connect: Callable[[str], psycopg.Connection], case: RoleCase) -> str:
    """Run the case's SQL as its role inside a transaction that is always rolled back; return OK or
    the SQLSTATE the server answered with."""
    with connect(case.role) as conn:
        try:
            with conn.transaction(force_rollback=True):
                # One statement at a time, so "SET TRANSACTION" stays the first statement of the transaction
                for statement in case.sql.split("; "):
                    conn.execute(statement.encode())
        except errors.Error as exc:
            return exc.sqlstate or "unknown"
    return OK


def role_attributes(superuser: psycopg.Connection) -> dict[str, dict[str, object]]:
    rows = superuser.execute(ROLE_ATTRIBUTES_SQL).fetchall()
    columns = [
        "rolname",
        "super",
        "createdb",
        "createrole",
        "replication",
        "bypassrls",
        "connlimit",
        "settings",
        "member_of",
    ]
    return {row[0]: dict(zip(columns, row, strict=True)) for row in rows}


def check_role_attributes(attributes: dict[str, dict[str, object]]) -> None:
    """The role attributes of the README's Roles table, checked from the catalogue."""
    assert set(attributes) == {"app_owner", "mcp_reader", "backup_operator", "replicator"}
    for name, role in attributes.items():
        for flag in ("super", "createdb", "createrole", "replication", "bypassrls"):
            expected = name == "replicator" and flag == "replication"
            assert role[flag] is expected, f"{name} must {'' if expected else 'not '}have {flag}"
        assert not DANGEROUS_ROLES & set(role["member_of"]), f"{name} is in {role['member_of']}"  # type: ignore[arg-type]
    reader = attributes["mcp_reader"]
    assert reader["connlimit"] == 20
    settings = str(reader["settings"])
    assert "default_transaction_read_only=on" in settings
    # the role-level backstop for any client (the MCP server sets its own, shorter, per transaction)
    assert "statement_timeout=30s" in settings.split(",")
    assert "idle_in_transaction_session_timeout=60s" in settings.split(",")
    assert "temp_file_limit=1GB" in settings
    assert reader["member_of"] == []
    assert attributes["backup_operator"]["member_of"] == [
        "pg_monitor",
        "pg_read_all_data",
        "pg_use_reserved_connections",
    ]
    assert attributes["app_owner"]["member_of"] == []
    replicator = attributes["replicator"]
    assert replicator["member_of"] == [] and replicator["settings"] == "" and replicator["connlimit"] == 5


REPLICATOR_DATABASES = ("app", "postgres", "template1")


def check_replicator_only_replicates(dsn: Callable[[str], str]) -> None:
    """The replicator opens a replication connection and runs the replication protocol (IDENTIFY_SYSTEM), and
    can connect to no database: `dsn(database)` is its conninfo for `database`, or for `replication`."""
    with psycopg.connect(dsn("replication"), replication="true", autocommit=True) as conn:
        result = conn.pgconn.exec_(b"IDENTIFY_SYSTEM")
        assert result.status == psycopg.pq.ExecStatus.TUPLES_OK, result.error_message
        assert result.ntuples == 1 and result.get_value(0, 0)  # the system identifier
        refused = conn.pgconn.exec_(b"SELECT 1")  # no SQL on a physical replication connection
        assert refused.status != psycopg.pq.ExecStatus.TUPLES_OK
    for database in REPLICATOR_DATABASES:
        try:
            psycopg.connect(dsn(database)).close()
        except psycopg.OperationalError as exc:
            assert "permission denied for database" in str(exc), str(exc)
        else:
            raise AssertionError(f"replicator connected to database {database}")
