"""The ROLE layer's startup check: is the server's database role really a least-privilege reader?

`audit_role(conn)` asks the database, as the role itself, everything that would let a query escape
read-only access: superuser and other dangerous attributes, write privileges on any table (directly or
through any role it is a member of), CREATE on any schema or database, TEMP, sequences it may advance,
large objects it may change, membership in the predefined roles that reach files, programs, other
sessions or all data, restricted functions granted to it, outbound connections (dblink, foreign
servers), and sessions that do not start read-only. Each problem carries the SQL an operator runs, as
a superuser, to fix it.

The server (`pgmcp.db`) refuses to start on any problem unless its development override is set, and
then logs a loud warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

__all__ = [
    "DANGEROUS_MEMBERSHIPS",
    "MANAGED_ADMIN_ROLES",
    "PUBLIC_TEMP",
    "RoleProblem",
    "accept_public_temp",
    "audit_role",
]

# Predefined roles a reader must not reach, and why.
DANGEROUS_MEMBERSHIPS: dict[str, str] = {
    "pg_read_server_files": "reads any file on the database server (COPY FROM, pg_read_file)",
    "pg_write_server_files": "writes any file on the database server (COPY TO)",
    "pg_execute_server_program": "runs programs on the database server (COPY ... PROGRAM)",
    "pg_signal_backend": "cancels and terminates other sessions",
    "pg_signal_autovacuum_worker": "cancels and terminates autovacuum workers",
    "pg_write_all_data": "writes every table",
    "pg_read_all_data": "reads every table, past the schemas the reader was granted",
    "pg_read_all_stats": "reads every session's SQL text, which can hold passwords and personal data",
    "pg_maintain": "runs VACUUM, ANALYZE, CLUSTER, REINDEX, REFRESH and LOCK on every table",
    "pg_checkpoint": "forces checkpoints",
    "pg_create_subscription": "creates subscriptions, which connect out and write",
}

# The administrator roles of managed services. Their members are not SUPERUSER (the service keeps that), but
# they can do nearly all a superuser can: create roles, own every object the service's users create, read
# and change every table. Refused like a superuser, whether the reader is one of them or a member of one.
MANAGED_ADMIN_ROLES: dict[str, str] = {
    "rds_superuser": "Amazon RDS and Aurora",
    "rdsadmin": "Amazon RDS and Aurora (the service's own role)",
    "azure_pg_admin": "Azure Database for PostgreSQL",
    "azure_superuser": "Azure Database for PostgreSQL (the service's own role)",
    "cloudsqlsuperuser": "Google Cloud SQL",
    "cloudsqladmin": "Google Cloud SQL (the service's own role)",
    "alloydbsuperuser": "Google AlloyDB",
}

_LISTED = 5  # object names quoted per problem; the rest are counted


@dataclass(frozen=True, slots=True)
class RoleProblem:
    """One way the role can do more than read; `hint` is the SQL (run as a superuser) that fixes it."""

    code: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}"


def _names(objects: list[str]) -> str:
    shown = ", ".join(objects[:_LISTED])
    return shown if len(objects) <= _LISTED else f"{shown} and {len(objects) - _LISTED} more"


def _quote(conn: psycopg.AsyncConnection[Any], name: str) -> str:
    return sql.Identifier(name).as_string(conn)


# -- the queries, run as the audited role ----------------------------------------------------------------------

# Every role whose privileges the session can use: itself, and each role it is a member of (by
# inheritance or through SET ROLE), with the direct grant that leads there.
_REACH_SQL = """
SELECT t.rolname, t.rolsuper, t.rolcreaterole, t.rolcreatedb, t.rolreplication, t.rolbypassrls,
       CASE WHEN t.rolname = current_user THEN NULL ELSE (
           SELECT string_agg(g.rolname, ', ' ORDER BY g.rolname)
           FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
           WHERE m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
             AND pg_catalog.pg_has_role(g.oid, t.oid, 'MEMBER')
       ) END AS via
FROM pg_catalog.pg_roles t
WHERE pg_catalog.pg_has_role(current_user, t.oid, 'MEMBER')
ORDER BY t.rolname = current_user DESC, t.rolname
"""

# The object-privilege probes. Each returns (group, object, granted_to_public) for one role, %(role)s:
# `group` is what a fix statement is per (a schema, a privilege, an object kind), `object` the quoted name.
_PROBES: dict[str, str] = {
    "tables": """
SELECT n.nspname, format('%%I.%%I', n.nspname, c.relname),
       EXISTS (SELECT 1 FROM pg_catalog.aclexplode(c.relacl) a
               WHERE a.grantee = 0 AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'))
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  -- system catalogues only take writes from superusers (checked first); PUBLIC's UPDATE on the
  -- pg_settings view is SET in disguise, which the AST layer refuses and every transaction rolls back
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND (pg_catalog.has_table_privilege(%(role)s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
       OR pg_catalog.has_any_column_privilege(%(role)s, c.oid, 'INSERT, UPDATE'))
""",
    "owned": """
WITH me AS (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %(role)s)
SELECT 'relation', format('%%I.%%I', n.nspname, c.relname), false
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relowner = (SELECT oid FROM me)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')  -- indexes and TOAST tables follow their table
UNION ALL
SELECT 'schema', format('%%I', n.nspname), false FROM pg_catalog.pg_namespace n WHERE n.nspowner = (SELECT oid FROM me)
UNION ALL
SELECT 'function', p.oid::regprocedure::text, false FROM pg_catalog.pg_proc p WHERE p.proowner = (SELECT oid FROM me)
UNION ALL
SELECT 'database', format('%%I', d.datname), false FROM pg_catalog.pg_database d WHERE d.datdba = (SELECT oid FROM me)
""",
    "sequences": """
SELECT n.nspname, format('%%I.%%I', n.nspname, c.relname),
       EXISTS (SELECT 1 FROM pg_catalog.aclexplode(c.relacl) a
               WHERE a.grantee = 0 AND a.privilege_type IN ('USAGE', 'UPDATE'))
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
-- CASE: the planner may evaluate has_sequence_privilege before relkind, and it fails on non-sequences
WHERE CASE WHEN c.relkind = 'S' THEN pg_catalog.has_sequence_privilege(%(role)s, c.oid, 'USAGE, UPDATE') END
""",
    "schemas": """
SELECT 'CREATE', format('%%I', n.nspname),
       EXISTS (SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) a WHERE a.grantee = 0 AND a.privilege_type = 'CREATE')
FROM pg_catalog.pg_namespace n
WHERE pg_catalog.has_schema_privilege(%(role)s, n.oid, 'CREATE')
""",
    "databases": """
SELECT p.privilege, format('%%I', d.datname),
       EXISTS (SELECT 1 FROM pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a
               WHERE a.grantee = 0 AND a.privilege_type = p.privilege)
FROM pg_catalog.pg_database d CROSS JOIN (VALUES ('CREATE'), ('TEMPORARY')) AS p(privilege)
WHERE d.datallowconn
  AND pg_catalog.has_database_privilege(%(role)s, d.oid, 'CONNECT')
  AND pg_catalog.has_database_privilege(%(role)s, d.oid, p.privilege)
""",
    "large_objects": """
SELECT 'UPDATE', m.oid::text, false FROM pg_catalog.pg_largeobject_metadata m
WHERE pg_catalog.has_largeobject_privilege(%(role)s, m.oid, 'UPDATE')
""",
    # administration functions (pg_read_file, lo_import, pg_reload_conf, ...): PUBLIC may not run them
    "functions": """
SELECT 'EXECUTE', p.oid::regprocedure::text, false
FROM pg_catalog.pg_proc p
WHERE p.proacl IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a
                  WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
  AND pg_catalog.has_function_privilege(%(role)s, p.oid, 'EXECUTE')
""",
    "outbound": """
SELECT 'FUNCTION', p.oid::regprocedure::text, true FROM pg_catalog.pg_proc p
WHERE p.proname LIKE 'dblink%%' AND pg_catalog.has_function_privilege(%(role)s, p.oid, 'EXECUTE')
UNION ALL
SELECT 'SERVER', format('%%I', s.srvname), true FROM pg_catalog.pg_foreign_server s
WHERE pg_catalog.has_server_privilege(%(role)s, s.oid, 'USAGE')
UNION ALL
SELECT 'FOREIGN DATA WRAPPER', format('%%I', w.fdwname), true FROM pg_catalog.pg_foreign_data_wrapper w
WHERE pg_catalog.has_foreign_data_wrapper_privilege(%(role)s, w.oid, 'USAGE')
""",
}

_READ_ONLY_SQL = "SELECT setting, source FROM pg_catalog.pg_settings WHERE name = 'default_transaction_read_only'"

_Finding = tuple[str, str, bool]  # (group, object, granted to PUBLIC)


async def _rows(conn: psycopg.AsyncConnection[Any], query: str, **params: Any) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cursor:
        await cursor.execute(query, params or None)
        return list(await cursor.fetchall())


# -- the checks ---------------------------------------------------------------------------------------------------


async def audit_role(conn: psycopg.AsyncConnection[Any]) -> list[RoleProblem]:
    """Every way `conn`'s role can do more than read; an empty list means the role is fit to serve.

    Runs as the role itself (it needs no privilege beyond what every role has) and changes nothing.
    A privilege the role holds through a group is reported once, under that group, with the membership
    to revoke; what is left is the role's own (or PUBLIC's), with the REVOKE that removes it.
    """
    problems: list[RoleProblem] = []
    reach = await _rows(conn, _REACH_SQL)
    me = str(reach[0][0])
    qme = _quote(conn, me)
    groups = {str(row[0]): str(row[6]) for row in reach[1:]}

    attributes = (
        (1, "superuser", "SUPERUSER", "NOSUPERUSER", "bypasses every privilege check, read-only mode included"),
        (2, "createrole", "CREATEROLE", "NOCREATEROLE", "creates and changes roles"),
        (3, "createdb", "CREATEDB", "NOCREATEDB", "creates databases"),
        (4, "replication", "REPLICATION", "NOREPLICATION", "streams the whole cluster and manages slots"),
        (5, "bypassrls", "BYPASSRLS", "NOBYPASSRLS", "ignores row-level security policies"),
    )
    if reach[0][1]:
        # a superuser is a member of every role and passes every other check: fix this first, then the
        # audit reports the rest
        return [
            RoleProblem(
                "superuser",
                f"role {me} has SUPERUSER: it bypasses every privilege check, read-only mode included",
                f"ALTER ROLE {qme} NOSUPERUSER",
            )
        ]
    managed = _managed_admin_problem(conn, me, groups, qme)
    if managed is not None:
        return [managed]  # like SUPERUSER: fix this first, then the audit reports the rest
    for row in reach:
        role = str(row[0])
        for index, code, attribute, negation, effect in attributes:
            if not row[index]:
                continue
            if role == me:
                problems.append(
                    RoleProblem(code, f"role {me} has {attribute}: it {effect}", f"ALTER ROLE {qme} {negation}")
                )
            else:
                problems.append(
                    RoleProblem(
                        code,
                        f"role {me} is a member of {role}, which has {attribute}{_through(role, groups)}: "
                        f"after SET ROLE it {effect}",
                        _revoke_membership(conn, role, groups, qme),
                    )
                )
    for predefined, effect in DANGEROUS_MEMBERSHIPS.items():
        if predefined in groups:
            problems.append(
                RoleProblem(
                    "membership",
                    f"role {me} is a member of {predefined}{_through(predefined, groups)}: it {effect}",
                    _revoke_membership(conn, predefined, groups, qme),
                )
            )

    findings = {str(row[0]): await _findings(conn, str(row[0])) for row in reach}
    explained: dict[str, set[tuple[str, str]]] = {}
    for group in groups:
        for category, found in findings[group].items():
            explained.setdefault(category, set()).update((item[0], item[1]) for item in found)
    for category, found in findings[me].items():
        own = [item for item in found if (item[0], item[1]) not in explained.get(category, set())]
        if category == "databases":
            own, public_temp = await _split_public_temp(conn, own)
            problems.extend(_public_temp_problem(me, name) for name in public_temp)
        problems.extend(_describe(conn, category, own, f"role {me}", lambda fix: fix, qme))
    for group in groups:
        if group in DANGEROUS_MEMBERSHIPS:
            continue  # already reported as a membership, with the same fix
        revoke = _revoke_membership(conn, group, groups, qme)

        def membership_fix(_own_fix: str, revoke: str = revoke) -> str:
            return revoke

        for category, found in findings[group].items():
            problems.extend(
                _describe(
                    conn,
                    category,
                    found,
                    f"role {me}, through membership in {group}{_through(group, groups)},",
                    membership_fix,
                    qme,
                )
            )

    read_only = await _rows(conn, _READ_ONLY_SQL)
    if read_only and read_only[0][0] != "on":
        problems.append(
            RoleProblem(
                "read_only_default",
                f"sessions of role {me} start read-write (default_transaction_read_only is "
                f"{read_only[0][0]}, from {read_only[0][1]})",
                f"ALTER ROLE {qme} SET default_transaction_read_only = on",
            )
        )
    return problems


def _managed_admin_problem(
    conn: psycopg.AsyncConnection[Any], me: str, groups: dict[str, str], qme: str
) -> RoleProblem | None:
    """The managed service's administrator role, when the reader is that role or reaches it."""
    if me in MANAGED_ADMIN_ROLES:
        return RoleProblem(
            "managed_superuser",
            f"role {me} is the administrator role of {MANAGED_ADMIN_ROLES[me]}: it can do nearly all a superuser "
            "can, read-only mode aside",
            'connect as a dedicated reader role instead: make reader-role creates one (README: "Create the roles on '
            'your server")',
        )
    for role, service in MANAGED_ADMIN_ROLES.items():
        if role in groups:
            return RoleProblem(
                "managed_superuser",
                f"role {me} is a member of {role}{_through(role, groups)}, the administrator role of {service}: "
                "after SET ROLE it can do nearly all a superuser can",
                _revoke_membership(conn, role, groups, qme),
            )
    return None


async def _findings(conn: psycopg.AsyncConnection[Any], role: str) -> dict[str, list[_Finding]]:
    found: dict[str, list[_Finding]] = {}
    for category, query in _PROBES.items():
        rows = await _rows(conn, query, role=role)
        found[category] = sorted((str(group), str(name), bool(public)) for group, name, public in rows)
    return found


def _through(role: str, groups: dict[str, str]) -> str:
    via = groups.get(role, role)
    return "" if via == role else f" (through {via})"


def _revoke_membership(conn: psycopg.AsyncConnection[Any], role: str, groups: dict[str, str], qme: str) -> str:
    """REVOKE the direct grant(s) through which the role reaches `role`."""
    direct = [group.strip() for group in groups.get(role, role).split(",") if group.strip()]
    return "; ".join(f"REVOKE {_quote(conn, group)} FROM {qme}" for group in direct)


def _grantees(found: list[_Finding], qme: str) -> str:
    return "PUBLIC, " + qme if any(public for _, _, public in found) else qme


def _describe(
    conn: psycopg.AsyncConnection[Any],
    category: str,
    found: list[_Finding],
    who: str,
    fix: Callable[[str], str],
    qme: str,
) -> list[RoleProblem]:
    """The problems for one category of findings; `fix(own_fix)` returns the hint to show."""
    if not found:
        return []
    names = [name for _, name, _ in found]
    by_group: dict[str, list[_Finding]] = {}
    for item in found:
        by_group.setdefault(item[0], []).append(item)
    if category == "tables":
        own = "; ".join(
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {_quote(conn, schema)} "
            f"FROM {_grantees(items, qme)}"
            for schema, items in by_group.items()
        )
        return [
            RoleProblem(
                "can_write",
                f"{who} can write to {len(found)} table(s): {_names(names)}",
                fix(own + " -- also revoke column-level INSERT or UPDATE grants, and check ALTER DEFAULT PRIVILEGES"),
            )
        ]
    if category == "owned":
        return [
            RoleProblem(
                "owns_objects",
                f"{who} owns {len(found)} object(s), and an owner may alter, drop and grant them: "
                f"{_names([f'{kind} {name}' for kind, name, _ in found])}",
                fix(f"REASSIGN OWNED BY {qme} TO <the owning application role> -- in each database"),
            )
        ]
    if category == "sequences":
        own = "; ".join(
            f"REVOKE USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA {_quote(conn, schema)} FROM {_grantees(items, qme)}"
            for schema, items in by_group.items()
        )
        return [
            RoleProblem(
                "can_write",
                f"{who} can advance {len(found)} sequence(s) with nextval()/setval(): {_names(names)}",
                fix(own),
            )
        ]
    if category == "schemas":
        own = "; ".join(f"REVOKE CREATE ON SCHEMA {item[1]} FROM {_grantees([item], qme)}" for item in found)
        return [
            RoleProblem("can_create", f"{who} can create objects in {len(found)} schema(s): {_names(names)}", fix(own))
        ]
    if category == "databases":
        problems = []
        for privilege, name, public in found:
            effect = "create schemas in" if privilege == "CREATE" else "create temporary tables in"
            problems.append(
                RoleProblem(
                    "can_create" if privilege == "CREATE" else "can_create_temp",
                    f"{who} can {effect} database {name}" + (" (granted to PUBLIC)" if public else ""),
                    fix(f"REVOKE {privilege} ON DATABASE {name} FROM {'PUBLIC, ' + qme if public else qme}"),
                )
            )
        return problems
    if category == "large_objects":
        own = "; ".join(f"REVOKE UPDATE ON LARGE OBJECT {name} FROM {qme}" for name in names[:_LISTED])
        return [
            RoleProblem(
                "can_write",
                f"{who} can change {len(found)} large object(s): {_names(names)}",
                fix(own + (" -- and the same for the others" if len(names) > _LISTED else "")),
            )
        ]
    if category == "functions":
        own = "; ".join(f"REVOKE EXECUTE ON FUNCTION {name} FROM {qme}" for name in names[:_LISTED])
        return [
            RoleProblem(
                "restricted_function",
                f"{who} may execute {len(found)} administration function(s) that PUBLIC may not: {_names(names)}",
                fix(own + (" -- and the same for the others" if len(names) > _LISTED else "")),
            )
        ]
    # outbound
    own = "; ".join(
        f"REVOKE {'EXECUTE' if kind == 'FUNCTION' else 'USAGE'} ON {kind} {name} FROM PUBLIC, {qme}"
        for kind, name, _ in found[:_LISTED]
    )
    if len(found) > _LISTED:
        own += f" -- and the same for the other {len(found) - _LISTED}, or drop the extension if nothing uses it"
    return [
        RoleProblem(
            "outbound_connections",
            f"{who} can open database connections outside the read-only transaction: "
            f"{_names([f'{kind.lower()} {name}' for kind, name, _ in found])}",
            fix(own),
        )
    ]


# -- TEMP through PUBLIC only (the PostgreSQL default), which MCP_ALLOW_PUBLIC_TEMP accepts -------------------------

PUBLIC_TEMP = "public_temp"
"""The code of a problem where the role may create temporary tables only because PUBLIC may."""

# Whether the session's role holds TEMP on the database %(name)s (quoted) through a grant other than PUBLIC's.
_OWN_TEMP_SQL = """
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_database d,
         pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a
    WHERE format('%%I', d.datname) = %(name)s AND a.privilege_type = 'TEMPORARY' AND a.grantee <> 0
      AND pg_catalog.pg_has_role(current_user, a.grantee, 'MEMBER'))
"""


async def _split_public_temp(
    conn: psycopg.AsyncConnection[Any], found: list[_Finding]
) -> tuple[list[_Finding], list[str]]:
    """The database findings without the TEMP ones granted through PUBLIC alone, and the databases of those."""
    kept: list[_Finding] = []
    public_only: list[str] = []
    for item in found:
        privilege, name, public = item
        if privilege == "TEMPORARY" and public and not (await _rows(conn, _OWN_TEMP_SQL, name=name))[0][0]:
            public_only.append(name)
        else:
            kept.append(item)
    return kept, public_only


def _public_temp_problem(me: str, database: str) -> RoleProblem:
    return RoleProblem(
        PUBLIC_TEMP,
        f"role {me} can create temporary tables in database {database} through PUBLIC (the PostgreSQL default)",
        f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC, and GRANT it to the roles that use it "
        "(`make reader-role` shows that SQL), or accept it with MCP_ALLOW_PUBLIC_TEMP=true",
    )


def accept_public_temp(problems: list[RoleProblem]) -> list[RoleProblem]:
    """MCP_ALLOW_PUBLIC_TEMP=true: log each PUBLIC-only TEMP problem as a warning; return the others."""
    for problem in problems:
        if problem.code == PUBLIC_TEMP:
            logger.warning(
                "%s; accepted (MCP_ALLOW_PUBLIC_TEMP=true): read-only transactions and the guard still hold",
                problem.message,
            )
    return [problem for problem in problems if problem.code != PUBLIC_TEMP]
