"""`python -m pgmcp reader-role` (`make reader-role ADMIN_URL=...`): create the MCP reader role and the backup
role on a database the stack does not own, with the privileges of the bundled stack's (compose/initdb/10-roles.sh).

It inspects the database as the admin role of `ADMIN_URL` (a libpq URI or key/value DSN, read from the
environment so it never reaches argv; its password comes from the URL, PGPASSWORD or a password file, as for
psql), shows the SQL it would run with the passwords redacted, asks (or needs `--force`), runs it in one
transaction, then logs in as the reader and runs the server's startup audit. Rerunning it changes nothing.

The role passwords are the stack's secret files (`compose/secrets/mcp_reader_password`, `backup_password`),
generated there (0600) when missing. The server receives them as SCRAM verifiers computed here (libpq's
PQencryptPasswordConn), so no password is sent in clear SQL or written to a server log.

TEMP through PUBLIC (every new database's default) would let the reader create temporary tables: the fix
revokes it from PUBLIC and grants it to each other role that can log in and would lose it, by name. With
MCP_ALLOW_PUBLIC_TEMP=true that fix is left out and the audit warns instead of refusing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgmcp import role_audit
from pgmcp.config import READER_CONNECTION_LIMIT, VARIABLES
from pgmcp.errors import ExitCode

__all__ = ["MAKE_USAGE", "Plan", "Step", "inspect", "main"]

MAKE_USAGE = "make reader-role ADMIN_URL=<libpq URI of an admin role> [FORCE=1] [SCHEMAS=<schema,...>]"

# What compose/initdb/10-roles.sh gives the bundled reader, applied with ALTER ROLE ... SET.
READER_SETTINGS: dict[str, str] = {
    "default_transaction_read_only": "on",
    "statement_timeout": "30s",
    "idle_in_transaction_session_timeout": "60s",
    "lock_timeout": "2s",
    "temp_file_limit": "1GB",  # only a superuser may set it: left out, with a note, for other admins
}
# pg_read_all_data: pg_dump reads every table; pg_use_reserved_connections: a backup still gets a slot when
# ordinary clients hold all the others; pg_monitor: postgres_exporter (PROFILE=monitoring) logs in as this role
# and reads every session's state and the WAL directory's size
BACKUP_MEMBERSHIPS = ("pg_read_all_data", "pg_use_reserved_connections", "pg_monitor")
_ATTRIBUTES = ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls", "rolcanlogin")
_KEYWORDS = {
    "rolsuper": "SUPERUSER",
    "rolcreatedb": "CREATEDB",
    "rolcreaterole": "CREATEROLE",
    "rolreplication": "REPLICATION",
    "rolbypassrls": "BYPASSRLS",
    "rolcanlogin": "LOGIN",
    "rolinherit": "INHERIT",
}
_REDACTED = sql.SQL("'<redacted>'")
_SYSTEM_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'"


@dataclass(frozen=True, slots=True)
class Step:
    """One statement: `why` is the comment shown above it, `shown` the SQL shown (passwords redacted)."""

    why: str
    shown: str
    statement: sql.Composed


@dataclass(slots=True)
class Plan:
    """What the command will run, and what it found but leaves alone (`notes`)."""

    steps: list[Step]
    notes: list[str]


@dataclass(frozen=True, slots=True)
class Roles:
    reader: str
    backup: str
    reader_password: str
    backup_password: str


# -- inspection: the steps that bring the database to the bundled stack's state -------------------------------


def inspect(
    conn: psycopg.Connection[Any],
    roles: Roles,
    *,
    schemas: Sequence[str] = (),
    allow_public_temp: bool = False,
    login_works: Mapping[str, bool] | None = None,
) -> Plan:
    """The steps for `conn`'s database; `login_works[role]` says the role's password is already the file's."""
    plan = Plan([], [])
    login_works = login_works or {}
    database = _scalar(conn, "SELECT current_database()")
    admin_super = bool(_scalar(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    _role_steps(conn, plan, roles.reader, roles.reader_password, login_works.get(roles.reader, False), inherit=False)
    _reader_settings(conn, plan, roles.reader, admin_super)
    _memberships(conn, plan, roles.reader, ())
    _role_steps(conn, plan, roles.backup, roles.backup_password, login_works.get(roles.backup, False), inherit=True)
    _memberships(conn, plan, roles.backup, BACKUP_MEMBERSHIPS)
    for role in (roles.reader, roles.backup):
        if not _has(conn, role, "SELECT has_database_privilege(%(role)s, current_database(), 'CONNECT')"):
            plan.steps.append(
                _step(
                    conn,
                    f"{role} connects to {database}",
                    "GRANT CONNECT ON DATABASE {} TO {}",
                    sql.Identifier(database),
                    sql.Identifier(role),
                )
            )
    _revoke_reader_grants(conn, plan, roles.reader)
    _schema_grants(conn, plan, roles.reader, schemas)
    others = (roles.reader, roles.backup)
    if allow_public_temp:
        plan.notes.append("PUBLIC keeps TEMP on the databases the reader reaches (MCP_ALLOW_PUBLIC_TEMP=true)")
    else:
        _public_temp(conn, plan, roles.reader, others)
    _public_create(conn, plan, others)
    return plan


def _scalar(conn: psycopg.Connection[Any], query: str, params: Mapping[str, Any] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return bool(_scalar(conn, "SELECT count(*) FROM pg_roles WHERE rolname = %(role)s", {"role": role}) == 1)


def _has(conn: psycopg.Connection[Any], role: str, query: str, **params: str) -> bool:
    """A privilege check for `role`, false while the role does not exist."""
    return _exists(conn, role) and bool(_scalar(conn, query, {"role": role, **params}))


def _step(conn: psycopg.Connection[Any], why: str, template: str, *parts: sql.Composable) -> Step:
    statement = sql.SQL(template).format(*parts)
    return Step(why, statement.as_string(conn), statement)


def _role_steps(
    conn: psycopg.Connection[Any], plan: Plan, role: str, password: str, login_works: bool, *, inherit: bool
) -> None:
    wanted = {**dict.fromkeys(_ATTRIBUTES, False), "rolcanlogin": True, "rolinherit": inherit}
    limit = READER_CONNECTION_LIMIT if not inherit else -1
    row = conn.execute(
        f"SELECT {', '.join((*_ATTRIBUTES, 'rolinherit'))}, rolconnlimit FROM pg_roles WHERE rolname = %(role)s",
        {"role": role},
    ).fetchone()
    verifier = sql.Literal(conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode())
    words = " ".join(_KEYWORDS[name] if value else f"NO{_KEYWORDS[name]}" for name, value in wanted.items())
    limit_sql = f" CONNECTION LIMIT {limit}" if limit >= 0 else ""
    if row is None:
        template = f"CREATE ROLE {{}} {words}{limit_sql} PASSWORD {{}}"
        plan.steps.append(_secret_step(conn, f"create {role}", template, role, verifier))
        return
    current = dict(zip((*_ATTRIBUTES, "rolinherit", "rolconnlimit"), row, strict=True))
    wrong = [name for name, value in wanted.items() if current[name] != value]
    if wrong or (limit >= 0 and current["rolconnlimit"] != limit):
        changes = ", ".join(f"{_KEYWORDS[name]} is {current[name]}" for name in wrong) or "connection limit"
        plan.steps.append(
            _step(
                conn,
                f"{role} exists with {changes}: revoke that",
                f"ALTER ROLE {{}} {words}{limit_sql}",
                sql.Identifier(role),
            )
        )
    if not login_works:
        plan.steps.append(
            _secret_step(
                conn, f"{role} takes the password of its secret file", "ALTER ROLE {} PASSWORD {}", role, verifier
            )
        )


def _secret_step(conn: psycopg.Connection[Any], why: str, template: str, role: str, verifier: sql.Literal) -> Step:
    shown = sql.SQL(template).format(sql.Identifier(role), _REDACTED).as_string(conn)
    return Step(why, shown, sql.SQL(template).format(sql.Identifier(role), verifier))


def _reader_settings(conn: psycopg.Connection[Any], plan: Plan, role: str, admin_super: bool) -> None:
    rows = conn.execute(
        "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
        "WHERE r.rolname = %(role)s AND s.setdatabase = 0",
        {"role": role},
    ).fetchall()
    current = dict(str(row[0]).split("=", 1) for row in rows)
    for name, value in READER_SETTINGS.items():
        if current.get(name) == value:
            continue
        if name == "temp_file_limit" and not admin_super:
            plan.notes.append(f"{name} = {value} for {role} needs a superuser: set it with ALTER ROLE as one")
            continue
        plan.steps.append(
            _step(
                conn,
                f"{role}: {name} = {value}",
                f"ALTER ROLE {{}} SET {name} = {{}}",
                sql.Identifier(role),
                sql.Literal(value),
            )
        )


def _memberships(conn: psycopg.Connection[Any], plan: Plan, role: str, wanted: Sequence[str]) -> None:
    rows = conn.execute(
        "SELECT g.rolname, m.inherit_option FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %(role)s ORDER BY g.rolname",
        {"role": role},
    ).fetchall()
    current = {str(name): bool(inherit) for name, inherit in rows}
    for group in current:
        if group not in wanted:
            plan.steps.append(
                _step(
                    conn,
                    f"{role} is a member of {group}: revoke it",
                    "REVOKE {} FROM {}",
                    sql.Identifier(group),
                    sql.Identifier(role),
                )
            )
    for group in wanted:
        if current.get(group) is not True and _exists(conn, group):
            plan.steps.append(
                _step(
                    conn,
                    f"{role} uses the privileges of {group}",
                    "GRANT {} TO {} WITH INHERIT TRUE",
                    sql.Identifier(group),
                    sql.Identifier(role),
                )
            )


# The reader's own grants the audit refuses, as (statement template, object) rows; %(role)s is the reader.
_OWN_GRANTS_SQL = """
SELECT DISTINCT 'REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE {} FROM {}',
       format('%%I.%%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
WHERE c.relkind <> 'S' AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
  AND a.privilege_type <> 'SELECT'
UNION
SELECT 'REVOKE USAGE, UPDATE ON SEQUENCE {} FROM {}', format('%%I.%%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
WHERE c.relkind = 'S' AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
  AND a.privilege_type IN ('USAGE', 'UPDATE')
UNION
SELECT 'REVOKE CREATE ON SCHEMA {} FROM {}', format('%%I', n.nspname)
FROM pg_namespace n, aclexplode(n.nspacl) a
WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s) AND a.privilege_type = 'CREATE'
UNION
SELECT 'REVOKE CREATE, TEMPORARY ON DATABASE {} FROM {}', format('%%I', d.datname)
FROM pg_database d, aclexplode(d.datacl) a
WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s) AND a.privilege_type IN ('CREATE', 'TEMPORARY')
ORDER BY 1, 2
"""


def _revoke_reader_grants(conn: psycopg.Connection[Any], plan: Plan, role: str) -> None:
    for template, name in conn.execute(_OWN_GRANTS_SQL, {"role": role}).fetchall():
        plan.steps.append(
            _step(
                conn,
                f"{role} may write or create on {name}: revoke it",
                str(template),
                sql.SQL(str(name)),
                sql.Identifier(role),
            )
        )


def _schema_grants(conn: psycopg.Connection[Any], plan: Plan, role: str, schemas: Sequence[str]) -> None:
    rows = conn.execute(
        f"SELECT n.nspname, pg_get_userbyid(n.nspowner), pg_has_role(current_user, n.nspowner, 'MEMBER') "
        f"FROM pg_namespace n WHERE {_SYSTEM_SCHEMAS} ORDER BY 1"
    ).fetchall()
    found = {str(name): (str(owner), bool(member)) for name, owner, member in rows}
    missing = [name for name in schemas if name not in found]
    if missing:
        raise ReaderRoleError(
            f"unable to grant the reader schema(s) {', '.join(missing)}: not in this database",
            f"choose among {', '.join(found) or '(none)'} with SCHEMAS=<schema,...>",
        )
    for schema in schemas or list(found):
        owner, admin_is_member = found[schema]
        params = {"role": role, "schema": schema, "owner": owner}
        quoted = sql.Identifier(schema)
        if not _has(conn, role, "SELECT has_schema_privilege(%(role)s, %(schema)s, 'USAGE')", schema=schema):
            plan.steps.append(
                _step(
                    conn,
                    f"{role} may look into schema {schema}",
                    "GRANT USAGE ON SCHEMA {} TO {}",
                    quoted,
                    sql.Identifier(role),
                )
            )
        unreadable = _scalar(conn, _UNREADABLE_SQL, params) if _exists(conn, role) else 1
        if unreadable:
            plan.steps.append(
                _step(
                    conn,
                    f"{role} reads the tables of {schema}",
                    "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}",
                    quoted,
                    sql.Identifier(role),
                )
            )
        if _exists(conn, role) and _scalar(conn, _DEFAULT_SELECT_SQL, params):
            continue
        if not admin_is_member:
            plan.notes.append(
                f"tables {owner} creates in {schema} later are not readable by {role}: run ALTER "
                f"DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT SELECT ON TABLES as {owner}"
            )
            continue
        plan.steps.append(
            _step(
                conn,
                f"{role} reads the tables {owner} creates in {schema} later",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}",
                sql.Identifier(owner),
                quoted,
                sql.Identifier(role),
            )
        )


_UNREADABLE_SQL = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT has_table_privilege(%(role)s, c.oid, 'SELECT')
"""
_DEFAULT_SELECT_SQL = """
SELECT count(*) FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a
WHERE n.nspname = %(schema)s AND d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
  AND d.defaclobjtype = 'r' AND a.privilege_type = 'SELECT'
  AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
"""

# The databases where PUBLIC has TEMP and the reader may connect (through PUBLIC, or its own grant, or the one
# this command gives it on the current database).
_PUBLIC_TEMP_SQL = """
SELECT d.datname FROM pg_database d
WHERE d.datallowconn
  AND EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
              WHERE a.grantee = 0 AND a.privilege_type = 'TEMPORARY')
  AND (d.datname = current_database()
       OR EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                  WHERE a.privilege_type = 'CONNECT'
                    AND (a.grantee = 0 OR a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s))))
ORDER BY 1
"""
# Each role that can log in, could use the object through PUBLIC, and holds the privilege through no other grant
# it inherits: it loses the privilege with PUBLIC's, so it is granted it by name; unless its sessions start
# read-only (default_transaction_read_only=on on the role, as every MCP reader's): another reader must not get
# what the audit refuses, so it is listed in a note instead (`read_only` is true).
_LOSERS_SQL = """
SELECT r.rolname, EXISTS (
         SELECT 1 FROM pg_db_role_setting s
         WHERE s.setrole = r.oid
           AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
           AND 'default_transaction_read_only=on' = ANY(s.setconfig)) AS read_only
FROM pg_roles r
WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolname <> ALL(%(ours)s)
  AND {reach}
  AND NOT EXISTS (SELECT 1 FROM aclexplode({acl}) a
                  WHERE a.grantee <> 0 AND a.privilege_type = %(privilege)s AND pg_has_role(r.oid, a.grantee, 'USAGE'))
ORDER BY 1
"""


def _public_temp(conn: psycopg.Connection[Any], plan: Plan, reader: str, ours: Sequence[str]) -> None:
    for (database,) in conn.execute(_PUBLIC_TEMP_SQL, {"role": reader}).fetchall():
        acl = "(SELECT coalesce(datacl, acldefault('d', datdba)) FROM pg_database WHERE datname = %(object)s)"
        reach = "has_database_privilege(r.oid, %(object)s, 'CONNECT')"
        losers = _losers(conn, _LOSERS_SQL.format(reach=reach, acl=acl), str(database), "TEMPORARY", ours)
        _public_fix(conn, plan, f"database {database}", "TEMPORARY ON DATABASE", str(database), losers)


def _public_create(conn: psycopg.Connection[Any], plan: Plan, ours: Sequence[str]) -> None:
    """CREATE on a schema through PUBLIC: no default since PostgreSQL 15, but an upgraded database may have it."""
    rows = conn.execute(
        f"SELECT n.nspname FROM pg_namespace n, aclexplode(n.nspacl) a "
        f"WHERE {_SYSTEM_SCHEMAS} AND a.grantee = 0 AND a.privilege_type = 'CREATE' ORDER BY 1"
    ).fetchall()
    for (schema,) in rows:
        acl = "(SELECT nspacl FROM pg_namespace WHERE nspname = %(object)s)"
        reach = "has_schema_privilege(r.oid, %(object)s, 'USAGE')"
        losers = _losers(conn, _LOSERS_SQL.format(reach=reach, acl=acl), str(schema), "CREATE", ours)
        _public_fix(conn, plan, f"schema {schema}", "CREATE ON SCHEMA", str(schema), losers)


def _losers(
    conn: psycopg.Connection[Any], query: str, name: str, privilege: str, ours: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(the roles granted the privilege by name, the read-only ones left without it)."""
    params = {"object": name, "privilege": privilege, "ours": list(ours)}
    rows = conn.execute(query, params).fetchall()
    return [str(row[0]) for row in rows if not row[1]], [str(row[0]) for row in rows if row[1]]


def _public_fix(
    conn: psycopg.Connection[Any],
    plan: Plan,
    what: str,
    privilege_on: str,
    name: str,
    found: tuple[list[str], list[str]],
) -> None:
    losers, readers = found
    if readers:
        plan.notes.append(
            f"{', '.join(readers)} start read-only sessions (default_transaction_read_only=on, as an MCP reader does) "
            f"and lose {privilege_on.split()[0]} on {what} with PUBLIC's, not granted it by name: "
            f"GRANT {privilege_on} {sql.Identifier(name).as_string(conn)} TO each one that needs it"
        )
    kept = f"; {', '.join(losers)} keep it by name" if losers else "; no other role that can log in uses it"
    plan.steps.append(
        _step(
            conn,
            f"PUBLIC may use {privilege_on.split()[0]} on {what}, so would the reader{kept}",
            f"REVOKE {privilege_on} {{}} FROM PUBLIC",
            sql.Identifier(name),
        )
    )
    if losers:
        plan.steps.append(
            _step(
                conn,
                f"the roles that had {privilege_on.split()[0]} only through PUBLIC",
                f"GRANT {privilege_on} {{}} TO {{}}",
                sql.Identifier(name),
                sql.SQL(", ").join(sql.Identifier(role) for role in losers),
            )
        )


# -- the command ------------------------------------------------------------------------------------------------


class ReaderRoleError(Exception):
    """The command cannot go on; `hint` says what to do."""

    def __init__(self, message: str, hint: str, status: int = ExitCode.STARTUP) -> None:
        super().__init__(message)
        self.hint = hint
        self.status = status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pgmcp reader-role", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="run without asking (FORCE=1)")
    parser.add_argument("--schemas", default="", help="schemas the reader reads, comma-separated (default: all)")
    parser.add_argument("--reader", default="mcp_reader", help="the MCP reader role's name")
    parser.add_argument("--backup", default="backup_operator", help="the backup role's name")
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        help="where the passwords are (default: $SECRETS_DIR, as for ops/secrets.sh, else compose/secrets)",
    )
    return parser


def _password(path: Path) -> str:
    """The password in `path`, or a new one written there (0600) when the file is missing or empty."""
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(32)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(password + "\n")
    print(f"generated a new password in {path}")
    return password


def _login(admin: Mapping[str, Any], role: str, password: str) -> psycopg.Connection[Any] | None:
    try:
        return psycopg.connect(make_conninfo("", **{**admin, "user": role, "password": password}), autocommit=True)
    except psycopg.OperationalError:
        return None


def _where(admin: Mapping[str, Any]) -> str:
    return f"database {admin.get('dbname', '(default)')} on {admin.get('host', '(local socket)')}"


def _confirm(plan: Plan, force: bool) -> None:
    if force:
        return
    if not sys.stdin.isatty():
        raise ReaderRoleError(
            "refusing to change roles without a confirmation: there is no terminal to ask on",
            f"read the SQL above, then rerun with FORCE=1: {MAKE_USAGE}",
            ExitCode.USAGE,
        )
    answer = input(f"run these {len(plan.steps)} statement(s) in one transaction? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise ReaderRoleError("nothing changed: not confirmed", f"rerun {MAKE_USAGE} to try again", ExitCode.USAGE)


def _show(plan: Plan) -> None:
    for note in plan.notes:
        print(f"note: {note}")
    for step in plan.steps:
        print(f"-- {step.why}\n{step.shown};")


async def _audit(conninfo: str, allow_public_temp: bool) -> list[role_audit.RoleProblem]:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        problems = await role_audit.audit_role(conn)
    return role_audit.accept_public_temp(problems) if allow_public_temp else problems


def run(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """The command; returns its exit status (0: the reader passes the startup audit)."""
    args = _parser().parse_args(argv)
    admin_url = environ.get("ADMIN_URL", "")
    if not admin_url.strip():
        raise ReaderRoleError(
            "ADMIN_URL is not set: the admin role's connection to your database", f"usage: {MAKE_USAGE}", ExitCode.USAGE
        )
    allow = next(spec for spec in VARIABLES if spec.env == "MCP_ALLOW_PUBLIC_TEMP")
    try:
        allow_public_temp = bool(allow.kind.parse(environ.get(allow.env, "false")))
        admin = conninfo_to_dict(admin_url)
    except (ValueError, psycopg.ProgrammingError) as exc:
        raise ReaderRoleError(
            f"unable to read the settings: {str(exc).splitlines()[0]}", f"usage: {MAKE_USAGE}", ExitCode.USAGE
        ) from None
    secrets_dir = args.secrets_dir or Path(environ.get("SECRETS_DIR") or "compose/secrets")
    roles = Roles(
        args.reader,
        args.backup,
        _password(secrets_dir / "mcp_reader_password"),
        _password(secrets_dir / "backup_password"),
    )
    schemas = [name.strip() for name in args.schemas.split(",") if name.strip()]
    try:
        conn = psycopg.connect(admin_url)
    except psycopg.OperationalError as exc:
        raise ReaderRoleError(
            f"unable to connect as the admin role to {_where(admin)}: {str(exc).strip()}",
            "check ADMIN_URL, and give the password in the URL, PGPASSWORD or ~/.pgpass",
            ExitCode.UNREACHABLE,
        ) from None
    with conn:
        login_works = {}
        for role, password in ((roles.reader, roles.reader_password), (roles.backup, roles.backup_password)):
            check = _login(admin, role, password)
            login_works[role] = check is not None
            if check is not None:
                check.close()
        plan = inspect(conn, roles, schemas=schemas, allow_public_temp=allow_public_temp, login_works=login_works)
        conn.rollback()
        print(f"inspected {_where(admin)} as {admin.get('user', '(default user)')}")
        if not plan.steps:
            _show(plan)
            print(f"roles {roles.reader} and {roles.backup} are already right: nothing to change")
        else:
            _show(plan)
            _confirm(plan, args.force)
            with conn.transaction():
                for step in plan.steps:
                    conn.execute(step.statement)
            print(f"ran {len(plan.steps)} statement(s)")
    reader = make_conninfo("", **{**admin, "user": roles.reader, "password": roles.reader_password})
    try:
        problems = asyncio.run(_audit(reader, allow_public_temp))
    except psycopg.OperationalError as exc:
        raise ReaderRoleError(
            f"unable to log in as {roles.reader}: {str(exc).strip()}",
            "does pg_hba.conf let the role in from here?",
            ExitCode.UNREACHABLE,
        ) from None
    if problems:
        for problem in problems:
            print(f"audit: {problem.message}\n    hint: {problem.hint}")
        print(f"audit: role {roles.reader} fails the startup audit: the MCP server will refuse to start")
        return ExitCode.STARTUP
    print(f"audit: role {roles.reader} passes the startup audit")
    return ExitCode.OK


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    try:
        return run(argv, environ)
    except ReaderRoleError as exc:
        print(f"pgmcp reader-role: {exc}\nhint: {exc.hint}", file=sys.stderr)
        return exc.status
