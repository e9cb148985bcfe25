"""pgmcp.role_audit against real roles: each privilege a reader must not have is found, and its hint fixes it.

Every case makes a throwaway login role on the session server, grants it one thing too many, audits it
*as that role* (as the MCP server does), then runs the hint as a superuser and audits again. The role and
everything it owns are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from devtools.native_pg import NativePostgres
from pgmcp.role_audit import DANGEROUS_MEMBERSHIPS, MANAGED_ADMIN_ROLES, RoleProblem, audit_role


async def _audit(dsn: str) -> list[RoleProblem]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        return await audit_role(conn)


def audit(dsn: str) -> list[RoleProblem]:
    return asyncio.run(_audit(dsn))


@dataclass
class ThrowawayRole:
    name: str
    password: str
    server: NativePostgres

    @property
    def dsn(self) -> str:
        return (
            f"host={self.server.host} port={self.server.port} dbname={self.server.database} "
            f"user={self.name} password={self.password} connect_timeout=10"
        )


@pytest.fixture
def throwaway(pg: NativePostgres, superuser: psycopg.Connection) -> Iterator[ThrowawayRole]:
    """A login role like mcp_reader (CONNECT on app, USAGE on shop, read-only sessions) and nothing else."""
    role = ThrowawayRole(f"audit_{secrets.token_hex(4)}", secrets.token_urlsafe(24), pg)
    ident = sql.Identifier(role.name)
    superuser.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(role.password)))
    try:
        superuser.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ident))
        superuser.execute(sql.SQL("GRANT CONNECT ON DATABASE app TO {}").format(ident))
        superuser.execute(sql.SQL("GRANT USAGE ON SCHEMA shop TO {}").format(ident))
        superuser.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {}").format(ident))
        yield role
    finally:
        superuser.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        superuser.execute(sql.SQL("DROP ROLE {}").format(ident))


def test_the_stack_reader_role_passes(pg: NativePostgres) -> None:
    assert audit(pg.dsn("mcp_reader")) == []


def test_a_clean_throwaway_role_passes(throwaway: ThrowawayRole) -> None:
    assert audit(throwaway.dsn) == []


@pytest.mark.parametrize(
    ("role", "codes"),
    [
        ("postgres", {"superuser"}),
        ("app_owner", {"can_write", "owns_objects", "can_create", "can_create_temp", "read_only_default"}),
        ("backup_operator", {"membership", "read_only_default"}),
    ],
)
def test_the_other_stack_roles_fail(pg: NativePostgres, role: str, codes: set[str]) -> None:
    assert codes <= {problem.code for problem in audit(pg.dsn(role))}


@dataclass(frozen=True)
class Grant:
    id: str
    grant: str  # run as superuser; {role} is the throwaway role, quoted
    code: str
    words: str  # must appear in the problem's message
    fixable: bool = True  # whether the hint is runnable SQL as it stands


GRANTS = [
    Grant("superuser", "ALTER ROLE {role} SUPERUSER", "superuser", "has SUPERUSER"),
    Grant("createrole", "ALTER ROLE {role} CREATEROLE", "createrole", "has CREATEROLE"),
    Grant("createdb", "ALTER ROLE {role} CREATEDB", "createdb", "has CREATEDB"),
    Grant("replication", "ALTER ROLE {role} REPLICATION", "replication", "has REPLICATION"),
    Grant("bypassrls", "ALTER ROLE {role} BYPASSRLS", "bypassrls", "has BYPASSRLS"),
    Grant("insert", "GRANT INSERT ON shop.orders TO {role}", "can_write", "can write to 1 table(s): shop.orders"),
    Grant("truncate", "GRANT TRUNCATE ON shop.order_items TO {role}", "can_write", "shop.order_items"),
    Grant("column-update", "GRANT UPDATE (note) ON shop.orders TO {role}", "can_write", "shop.orders", False),
    Grant("writer-membership", "GRANT app_owner TO {role}", "can_write", "through membership in app_owner"),
    Grant("noinherit-membership", "GRANT app_owner TO {role} WITH INHERIT FALSE", "can_write",
          "through membership in app_owner"),
    Grant("sequence", "GRANT USAGE ON SEQUENCE shop.orders_order_id_seq TO {role}", "can_write",
          "can advance 1 sequence(s)"),
    Grant("create-schema", "GRANT CREATE ON SCHEMA shop TO {role}", "can_create", "can create objects in 1 schema"),
    Grant("create-database", "GRANT CREATE ON DATABASE app TO {role}", "can_create", "create schemas in database app"),
    Grant("temp", "GRANT TEMPORARY ON DATABASE app TO {role}", "can_create_temp", "create temporary tables"),
    Grant("owner", "ALTER TABLE shop.products OWNER TO {role}", "owns_objects", "relation shop.products", False),
    Grant("large-object", "SELECT lo_create(0) AS oid \\gset ALTER LARGE OBJECT :oid OWNER TO {role}", "can_write",
          "can change 1 large object(s)", False),
    Grant("restricted-function", "GRANT EXECUTE ON FUNCTION pg_read_file(text) TO {role}", "restricted_function",
          "pg_read_file(text)"),
    Grant("read-write-sessions", "ALTER ROLE {role} SET default_transaction_read_only = off", "read_only_default",
          "start read-write"),
    *(
        Grant(f"member-{predefined}", f"GRANT {predefined} TO {{role}}", "membership", f"member of {predefined}")
        for predefined in DANGEROUS_MEMBERSHIPS
    ),
]  # fmt: skip


def _run_as_superuser(superuser: psycopg.Connection, statement: str, role: str) -> None:
    text = statement.replace("{role}", sql.Identifier(role).as_string(superuser))
    if "\\gset" in text:  # a large object created here, owned by the role
        query, rest = text.split("\\gset")
        row = superuser.execute(query).fetchone()
        assert row is not None
        superuser.execute(rest.replace(":oid", str(row[0])))
    else:
        superuser.execute(text)


@pytest.mark.parametrize("grant", GRANTS, ids=lambda grant: grant.id)
def test_audit_finds_the_privilege_and_its_hint_fixes_it(
    throwaway: ThrowawayRole, superuser: psycopg.Connection, grant: Grant
) -> None:
    _run_as_superuser(superuser, grant.grant, throwaway.name)
    try:
        problems = audit(throwaway.dsn)
        matching = [problem for problem in problems if problem.code == grant.code and grant.words in problem.message]
        assert matching, f"no {grant.code} problem mentioning {grant.words!r} in {problems}"
        assert throwaway.name in matching[0].message
        if grant.fixable:
            # the hint is the SQL to run; for a membership, the alternatives after "; or" are not needed
            fix = matching[0].hint.split(" (also check")[0].split("; or ")[0]
            for statement in fix.split("; "):
                superuser.execute(statement)
            assert audit(throwaway.dsn) == []
    finally:
        if grant.id == "owner":
            superuser.execute("ALTER TABLE shop.products OWNER TO app_owner")


def test_a_superuser_is_reported_once_not_with_every_table(
    throwaway: ThrowawayRole, superuser: psycopg.Connection
) -> None:
    superuser.execute(sql.SQL("ALTER ROLE {} SUPERUSER").format(sql.Identifier(throwaway.name)))
    assert [problem.code for problem in audit(throwaway.dsn)] == ["superuser"]


def test_hints_quote_identifiers(pg: NativePostgres, superuser: psycopg.Connection) -> None:
    name = f"Audit Mixed {secrets.token_hex(3)}"
    password = secrets.token_urlsafe(24)
    ident = sql.Identifier(name)
    superuser.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(password)))
    try:
        superuser.execute(sql.SQL("GRANT CONNECT ON DATABASE app TO {}").format(ident))
        superuser.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(ident))
        dsn = psycopg.conninfo.make_conninfo(pg.dsn("mcp_reader"), user=name, password=password)
        problems = audit(dsn)
        hints = {problem.code: problem.hint for problem in problems}
        assert hints["createdb"] == f'ALTER ROLE "{name}" NOCREATEDB'
        assert re.search(
            r'ALTER ROLE "Audit Mixed \w+" SET default_transaction_read_only = on', hints["read_only_default"]
        )
    finally:
        superuser.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        superuser.execute(sql.SQL("DROP ROLE {}").format(ident))


@pytest.mark.parametrize("admin_role", sorted(MANAGED_ADMIN_ROLES))
def test_a_managed_service_admin_role_is_refused_like_a_superuser(
    throwaway: ThrowawayRole, superuser: psycopg.Connection, admin_role: str
) -> None:
    """The role as the service makes it (CREATEROLE, CREATEDB, no SUPERUSER), the reader a member through a group:
    refused with only that problem, and its hint (the REVOKE) makes the reader pass."""
    admin, group = sql.Identifier(admin_role), sql.Identifier(f"{throwaway.name}_team")
    superuser.execute(sql.SQL("CREATE ROLE {} NOLOGIN CREATEROLE CREATEDB").format(admin))
    superuser.execute(sql.SQL("GRANT pg_read_all_data, pg_write_all_data TO {}").format(admin))
    superuser.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group))
    try:
        superuser.execute(sql.SQL("GRANT {} TO {}").format(admin, group))
        superuser.execute(sql.SQL("GRANT {} TO {}").format(group, sql.Identifier(throwaway.name)))
        problems = audit(throwaway.dsn)
        assert [problem.code for problem in problems] == ["managed_superuser"], problems
        assert f"member of {admin_role} (through {throwaway.name}_team)" in problems[0].message
        assert MANAGED_ADMIN_ROLES[admin_role] in problems[0].message
        for statement in problems[0].hint.split("; "):
            superuser.execute(statement)
        assert audit(throwaway.dsn) == []
    finally:
        superuser.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(group))
        superuser.execute(sql.SQL("DROP ROLE {}").format(admin))


def test_connecting_as_a_managed_service_admin_role_is_refused(
    pg: NativePostgres, superuser: psycopg.Connection
) -> None:
    password = secrets.token_urlsafe(24)
    superuser.execute(sql.SQL("CREATE ROLE azure_pg_admin LOGIN CREATEROLE PASSWORD {}").format(sql.Literal(password)))
    try:
        superuser.execute("GRANT CONNECT ON DATABASE app TO azure_pg_admin")
        problems = audit(ThrowawayRole("azure_pg_admin", password, pg).dsn)
        assert [problem.code for problem in problems] == ["managed_superuser"]
        assert "administrator role of Azure Database for PostgreSQL" in problems[0].message
        assert "make reader-role" in problems[0].hint
    finally:
        superuser.execute("DROP OWNED BY azure_pg_admin")
        superuser.execute("DROP ROLE azure_pg_admin")
