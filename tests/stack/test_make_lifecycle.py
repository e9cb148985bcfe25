"""The front door as a user drives it: `make up`, `make psql`, `make down && make up` keeps the data, and
`make clean FORCE=1` removes it but its backups (`BACKUPS=1` those too). Runs `make` itself (not Compose
directly) on a project of its own, with its own secrets and free loopback ports, and removes that project at the
end whatever happens."""

from __future__ import annotations

import secrets as random_tokens
import subprocess
from collections.abc import Iterator

import docker
import psycopg
import pytest

from devtools.net import free_port
from tests.fixtures.stack import REPO, START_TIMEOUT, Stack

pytestmark = [pytest.mark.slow, pytest.mark.destructive]

ROLES = ("postgres", "app_owner", "mcp_reader", "backup_operator")


@pytest.fixture
def project() -> Iterator[Stack]:
    stack = Stack(project=f"pgstack-make-{random_tokens.token_hex(4)}", pg_port=free_port(), mcp_port=free_port())
    try:
        yield stack
    finally:
        stack.down()


def make(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        env=stack.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT + 300,
        check=False,
    )
    assert result.returncode == 0, f"make {' '.join(args)}: exit {result.returncode}\n{result.stderr[-4000:]}"
    return result


def volumes(stack: Stack) -> set[str]:
    wanted = {f"{stack.project}_pgdata", f"{stack.project}_backups"}
    return {volume.name for volume in docker.from_env().volumes.list() if volume.name in wanted}


def test_make_up_down_up_keeps_the_data_and_clean_removes_it(project: Stack) -> None:
    started = make(project, "up")
    for step in ("==> checking Docker Engine and Compose", "==> choosing base images", "==> the stack is up"):
        assert step in started.stderr, started.stderr[-4000:]
    assert f"127.0.0.1:{project.pg_port}" in started.stderr and f"127.0.0.1:{project.mcp_port}/mcp" in started.stderr

    for role in ROLES:
        answered = make(project, "psql", f"ROLE={role}", stdin="SELECT current_user, inet_server_port();\n")
        assert f" {role} " in answered.stdout and "5432" in answered.stdout, answered.stdout

    with psycopg.connect(project.dsn("app_owner"), autocommit=True) as conn:
        conn.execute("CREATE TABLE shop.lifecycle_probe (note text)")
        conn.execute("INSERT INTO shop.lifecycle_probe VALUES ('written before make down')")

    make(project, "down")
    assert project.compose("ps", "-q").stdout.split() == []
    assert volumes(project) == {f"{project.project}_pgdata", f"{project.project}_backups"}

    make(project, "up")
    with psycopg.connect(project.dsn("app_owner")) as conn:
        assert conn.execute("SELECT note FROM shop.lifecycle_probe").fetchall() == [("written before make down",)]

    make(project, "backup-now")
    cleaned = make(project, "clean", "FORCE=1")
    backups = f"{project.project}_backups"
    assert f"==> removing project {project.project} with its volumes, except the backups ({backups})" in cleaned.stderr
    assert volumes(project) == {backups}  # the database is gone, its backups are not
    assert project.compose("ps", "-q").stdout.split() == []
    listed = docker.from_env().containers.run(
        project.image("PYTHON_IMAGE"), ["ls", "/backups/sets"], volumes={backups: {"bind": "/backups", "mode": "ro"}},
        remove=True, user="0",
    )  # fmt: skip
    assert listed.split(), "the backup set taken before make clean is gone"

    cleaned = make(project, "clean", "FORCE=1", "BACKUPS=1")
    assert f"==> removing project {project.project} with its volumes, the backups included" in cleaned.stderr
    assert volumes(project) == set()
