"""A PostgreSQL major upgrade and its way back (`make upgrade-postgres MAJOR=19`, `make rollback`:
ops/upgrade-postgres.sh, runbooks/upgrade-postgres-major.md), with the next major release Debian's archive
offers: 19 (a release candidate, experimental suite), built into an image beside 18's binaries.

A project on 18 with a marker row is upgraded with pg_upgrade (copy mode) into a 19 cluster beside the old one
in the same volume: every row is there, the MCP server answers on 19, the first backup on 19 is verified. A row
written on 19, then `make rollback`: 18 again, on its cluster as it was before the upgrade (the row written on
19 is not in it, as the runbook says). The project's base image choice is a copy (OPS_IMAGE_CHOICE), so the
other stacks of this checkout keep 18. About three minutes, plus the image's first build (marked `major_upgrade`).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import psycopg
import pytest

from devtools.paths import REPO
from tests.fixtures.stack import Stack, start_stack
from tests.helpers import query_call

pytestmark = [pytest.mark.stack, pytest.mark.major_upgrade]

MARKER = f"major-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def on_18(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack() as stack:
        choice = tmp_path_factory.mktemp("choice") / "images.env"
        shutil.copy(REPO / ".state" / "images.env", choice)
        stack.extra_env["OPS_IMAGE_CHOICE"] = str(choice)
        with psycopg.connect(stack.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE major_marker (note text)")
            conn.execute("INSERT INTO major_marker VALUES (%s)", (MARKER,))
        try:
            yield stack
        finally:
            stack.down()
            images = docker.from_env().images
            for image in images.list(name="pgstack/mcp") + images.list(name="pgstack/backup"):
                for tag in image.tags:
                    if tag.endswith("-pg19"):
                        try:
                            images.remove(tag)
                        except docker.errors.APIError:
                            pass  # still in use by another project


def make(stack: Stack, *target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", *target],
        cwd=REPO,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-8000:]}"
    return result.stdout + result.stderr


def server(stack: Stack) -> int:
    with psycopg.connect(stack.dsn()) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]


def notes(stack: Stack) -> list[str]:
    with psycopg.connect(stack.dsn()) as conn:
        return [row[0] for row in conn.execute("SELECT note FROM major_marker ORDER BY note")]


def orders(stack: Stack) -> int:
    result = query_call("127.0.0.1", stack.mcp_port, stack.api_key, "SELECT count(*) FROM shop.orders")
    assert not result["isError"], result
    return int(result["structuredContent"]["rows"][0][0])


def test_pg_upgrade_to_19_keeps_every_row_and_rollback_returns_to_18(on_18: Stack) -> None:
    stack = on_18
    assert 180000 <= server(stack) < 190000
    output = ok(make(stack, "upgrade-postgres", "MAJOR=19"))
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert f"==> {step} " in output, output[-4000:]
    assert "Upgrade Complete" in output  # pg_upgrade's own last words
    assert "PostgreSQL 18 -> 19 after" in output
    assert server(stack) >= 190000
    assert notes(stack) == [MARKER] and orders(stack) == stack.demo_orders
    image = stack.container("backup").attrs["Config"]["Image"]
    assert image.endswith("-pg19"), image
    dump = stack.exec("backup", "pg_dump", "--version").stdout
    assert "pg_dump (PostgreSQL) 19" in dump
    choice = Path(stack.extra_env["OPS_IMAGE_CHOICE"]).read_text()
    assert "POSTGRES_IMAGE=pgstack/postgres:19" in choice or "POSTGRES_IMAGE=postgres:19" in choice
    # the old cluster is still there, untouched, beside the new one
    listing = stack.exec("postgres", "ls", "/var/lib/postgresql").stdout.split()
    assert {"18", "19"} <= set(listing), listing

    with psycopg.connect(stack.dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO major_marker VALUES ('written on 19')")
    output = ok(make(stack, "rollback"))
    assert "rolled back to" in output
    assert 180000 <= server(stack) < 190000
    assert notes(stack) == [MARKER], "18's cluster is as it was before the upgrade"
    assert orders(stack) == stack.demo_orders
    assert "pg_dump (PostgreSQL) 18" in stack.exec("backup", "pg_dump", "--version").stdout
    assert "POSTGRES_IMAGE=pgstack/postgres:19" not in Path(stack.extra_env["OPS_IMAGE_CHOICE"]).read_text()
