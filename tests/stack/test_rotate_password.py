"""`make rotate-password` on the real stack: it requires ROLE, a write that fails and an ALTER ROLE that fails
leave every role with a password its file holds, and a rotation of each role works, the service that reads
the secret comes back healthy, and the running postgres container (its health check, `make psql`) reads the
new password through its bind mount of the file, without a restart. The ordering, seen from inside, is the
fast tier's (tests/fast/foundation/test_rotate_password.py)."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from psycopg import sql

from tests.fixtures.stack import REPO, ROLE_SECRETS, Stack
from tests.helpers import read_only

USAGE = "usage: make rotate-password ROLE=mcp_reader|backup_operator|app_owner|postgres|replicator"
SERVICE_OF = {"mcp_reader": "mcp", "backup_operator": "backup"}


def make(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in stack.env().items() if name != "ROLE"}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def accepts(stack: Stack, role: str, password: str) -> bool:
    """The server takes `password` for `role`: a login to app, or for the replicator (which may connect to no
    database) a replication connection."""
    where = {"replication": "true"} if role == "replicator" else {"dbname": "app"}
    try:
        with psycopg.connect(
            host="127.0.0.1", port=stack.pg_port, user=role, password=password, connect_timeout=10, **where
        ):
            return True
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc), exc
        return False


def secret_files(stack: Stack) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(stack.secrets_dir.iterdir())}


def assert_every_role_logs_in_with_its_file(stack: Stack) -> None:
    for role, name in ROLE_SECRETS.items():
        assert accepts(stack, role, stack.secret(name)), f"{role} does not accept the password {name} holds"


def test_without_a_role_nothing_is_rotated(stack: Stack) -> None:
    before = secret_files(stack)
    result = make(stack, "rotate-password")
    assert result.returncode == 2, result.stderr
    assert USAGE in result.stderr and "Error 2" in result.stderr, result.stderr
    assert secret_files(stack) == before
    assert_every_role_logs_in_with_its_file(stack)


def test_a_write_that_fails_leaves_the_database_alone(stack: Stack) -> None:
    before = secret_files(stack)
    old = stack.secret("app_owner_password")
    with read_only(stack.secrets_dir / "app_owner_password"):
        result = make(stack, "rotate-password", "ROLE=app_owner")
    assert result.returncode == 2 and "Error 1" in result.stderr, result.stderr
    assert "the database was not touched, the old password still works" in result.stderr
    assert secret_files(stack) == before
    assert accepts(stack, "app_owner", old)
    assert_every_role_logs_in_with_its_file(stack)


def test_an_alter_role_that_fails_puts_the_old_file_back(stack: Stack) -> None:
    before = secret_files(stack)
    old = stack.secret("app_owner_password")
    rename = "ALTER ROLE {} RENAME TO {}"
    with psycopg.connect(stack.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL(rename).format(sql.Identifier("app_owner"), sql.Identifier("app_owner_away")))
    try:
        result = make(stack, "rotate-password", "ROLE=app_owner")
    finally:
        with psycopg.connect(stack.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL(rename).format(sql.Identifier("app_owner_away"), sql.Identifier("app_owner")))
    assert result.returncode == 2 and "Error 1" in result.stderr, result.stderr
    assert 'role "app_owner" does not exist' in result.stderr
    assert "holds the old one again" in result.stderr
    assert secret_files(stack) == before
    assert accepts(stack, "app_owner", old)


@pytest.mark.parametrize("role", list(ROLE_SECRETS))
def test_each_role_rotates_and_everything_reads_the_new_password(stack: Stack, role: str) -> None:
    name = ROLE_SECRETS[role]
    old = stack.secret(name)
    service = SERVICE_OF.get(role)
    recreated = stack.container(service).id if service else None
    result = make(stack, "rotate-password", f"ROLE={role}")
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"updated {stack.secrets_dir / name}" in result.stderr
    new = stack.secret(name)
    assert new != old
    assert accepts(stack, role, new) and not accepts(stack, role, old)
    assert sorted(secret_files(stack)) == sorted(
        [
            *ROLE_SECRETS.values(),
            "mcp_api_keys",
            "ca.crt",
            "ca.key",
            "server.crt",
            "server.key",
            "mcp_tls.crt",
            "mcp_tls.key",
        ]
    ), "nothing left beside"
    if service:
        container = stack.container(service)
        assert container.id != recreated, f"{service} was recreated to read the new password"
        assert container.attrs["State"]["Health"]["Status"] == "healthy"
    # the running postgres container sees the new file: make psql as the role (the replicator, which opens no
    # database, a replication connection from inside the container), and its own health check
    if role == "replicator":
        stack.exec(
            "postgres", "sh", "-c",
            'PGPASSWORD="$(cat /run/secrets/replicator_password)" psql "host=127.0.0.1 user=replicator '
            'replication=true sslmode=verify-full sslrootcert=/run/secrets/tls_ca_cert" -c IDENTIFY_SYSTEM',
        )  # fmt: skip
    else:
        answered = make(stack, "psql", f"ROLE={role}", stdin="SELECT current_user;\n")
        assert answered.returncode == 0 and f" {role}\n" in answered.stdout, answered.stdout + answered.stderr
    health = stack.container("postgres").attrs["Config"]["Healthcheck"]["Test"]
    assert health[0] == "CMD-SHELL"
    stack.exec("postgres", "sh", "-c", health[1])
    assert_every_role_logs_in_with_its_file(stack)
