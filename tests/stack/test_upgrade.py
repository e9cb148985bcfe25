"""Upgrades and the way back (`make upgrade`, `make rollback`: ops/upgrade.sh, ops/rollback.sh, ops/releases.sh).

A project runs the previous commit's images, built and started by that commit's own ops/ scripts and Compose
files (a git worktree of HEAD~1): this checkout's `make upgrade` takes a verified backup, drills it with the
new version, replaces the services one at a time and keeps the data. Then an upgrade to a deliberately broken
version (an mcp image that exits at once) stops, says how to go back and leaves the data alone, and
`make rollback` brings the last healthy version back with its own files. Traffic: the published loopback ports
and `docker exec` only.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import psycopg
import pytest

from devtools.net import free_port
from devtools.paths import REPO
from tests.fixtures.stack import SERVICES, Stack, stack_version
from tests.helpers import query_call

pytestmark = pytest.mark.stack

UPGRADE_TIMEOUT = 1500
MARKER = f"upgrade-{uuid.uuid4().hex[:8]}"


@dataclass
class Previous:
    """The project, started on the previous commit's images; `version` is their tag."""

    stack: Stack
    version: str
    tree: Path


def run(
    command: list[str], stack: Stack, timeout: float = UPGRADE_TIMEOUT, **env: str
) -> subprocess.CompletedProcess[str]:
    """A command with the project's environment (and `env`); its output is kept for the assertions."""
    return subprocess.run(
        command,
        cwd=REPO,
        env={**stack.env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result.stdout + result.stderr


def image_of(stack: Stack, service: str) -> str:
    return str(stack.container(service).attrs["Config"]["Image"])


def marker_rows(stack: Stack) -> int:
    with psycopg.connect(stack.dsn()) as conn:
        row = conn.execute("SELECT count(*) FROM upgrade_marker WHERE note = %s", (MARKER,)).fetchone()
    assert row is not None
    return int(row[0])


def answers_a_query(stack: Stack) -> bool:
    result = query_call("127.0.0.1", stack.mcp_port, stack.api_key, "SELECT count(*) FROM shop.orders")
    return not result["isError"] and result["structuredContent"]["rows"][0][0] == stack.demo_orders


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Previous]:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=7", "HEAD~1"], capture_output=True, text=True, check=False
    )
    assert commit.returncode == 0, f"this test needs the previous commit (a full clone): {commit.stderr}"
    sha = commit.stdout.strip()
    tree = tmp_path_factory.mktemp("previous") / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), "HEAD~1"], check=True)
    version = f"previous-{sha}"
    stack = Stack(project=f"pgstack-test-{uuid.uuid4().hex[:8]}", pg_port=free_port(), mcp_port=free_port())
    try:
        # the previous commit's own scripts and files, on the base images this checkout chose
        (tree / ".state").mkdir()
        shutil.copy(REPO / ".state" / "images.env", tree / ".state" / "images.env")
        ok(run([str(REPO / "ops" / "images.sh")], stack))
        ok(run([str(REPO / "ops" / "secrets.sh")], stack))
        compose = str(tree / "ops" / "compose.sh")
        ok(run([compose, "build", "mcp", "backup"], stack, STACK_VERSION=version))
        ok(run([compose, "up", "-d", "postgres"], stack, STACK_VERSION=version))
        ok(run([str(tree / "ops" / "wait-healthy.sh"), "postgres"], stack, STACK_VERSION=version))
        ok(run([compose, "up", "-d", "mcp", "backup"], stack, STACK_VERSION=version))
        ok(run([str(tree / "ops" / "wait-healthy.sh"), *SERVICES], stack, STACK_VERSION=version))
        with psycopg.connect(stack.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE upgrade_marker (note text)")
            conn.execute("INSERT INTO upgrade_marker VALUES (%s)", (MARKER,))
        yield Previous(stack=stack, version=version, tree=tree)
    finally:
        stack.down()
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        images = docker.from_env().images
        for name in ("mcp", "backup"):
            try:
                images.remove(f"pgstack/{name}:{version}")
            except docker.errors.APIError:
                pass  # in use by another project, or gone: docker image prune's business


def test_an_upgrade_from_the_previous_commit_keeps_the_data(previous: Previous) -> None:
    stack = previous.stack
    assert image_of(stack, "mcp") == f"pgstack/mcp:{previous.version}"
    output = ok(run(["make", "-s", "upgrade"], stack))
    current = stack_version()
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert f"==> {step} " in output, output
    assert f"upgraded from {previous.version} to {current}" in output
    assert "smoke query: SELECT count(*) AS relations FROM pg_catalog.pg_class ->" in output
    assert {image_of(stack, name) for name in ("mcp", "backup")} == {
        f"pgstack/mcp:{current}",
        f"pgstack/backup:{current}",
    }
    labels = stack.container("mcp").image.labels
    assert labels["org.opencontainers.image.version"] == current
    assert marker_rows(stack) == 1 and answers_a_query(stack)
    history = (REPO / ".state" / "releases" / stack.project / "history").read_text().split()
    assert history[1::2] == [previous.version, current]
    # the way back keeps the previous commit's own Compose files
    kept = REPO / ".state" / "releases" / stack.project / previous.version / "compose" / "compose.yaml"
    assert kept.read_text() == (previous.tree / "compose" / "compose.yaml").read_text()
    if not current.endswith("-dirty"):  # a clean version is there already: nothing to do
        assert "nothing to upgrade" in ok(run(["make", "-s", "upgrade"], stack, timeout=120))


def test_a_failed_upgrade_stops_and_a_rollback_brings_the_last_healthy_version_back(previous: Previous) -> None:
    stack = previous.stack
    current = stack_version()
    broken = f"broken-{uuid.uuid4().hex[:8]}"
    client = docker.from_env()
    dockerfile = (
        f"FROM pgstack/mcp:{current}\n"
        'ENTRYPOINT ["python", "-c", "import sys; sys.exit(\'deliberately broken for the rollback test\')"]\n'
    )
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"pgstack/mcp:{broken}", rm=True)
    client.images.get(f"pgstack/backup:{current}").tag("pgstack/backup", broken)
    try:
        failed = run(["make", "-s", "upgrade"], stack, STACK_VERSION=broken, RELEASES_HEALTH_TIMEOUT="90")
        assert failed.returncode != 0, failed.stdout + failed.stderr
        assert f"the upgrade from {current} to {broken} stopped at replacing mcp" in failed.stderr
        assert "hint: make rollback" in failed.stderr and "backup set" in failed.stderr
        assert image_of(stack, "mcp") == f"pgstack/mcp:{broken}"
        assert marker_rows(stack) == 1  # postgres was replaced with the same image: the data did not move

        output = ok(run(["make", "-s", "rollback"], stack))
        assert f"rolled back to {current}" in output
        assert image_of(stack, "mcp") == f"pgstack/mcp:{current}"
        stack.wait_healthy()
        assert marker_rows(stack) == 1 and answers_a_query(stack)
        # after a rollback to it, the broken version is not the way back: the previous commit's is
        history = (REPO / ".state" / "releases" / stack.project / "history").read_text().split()
        assert broken not in history and history[-1] == current
    finally:
        for name in ("mcp", "backup"):
            try:
                client.images.remove(f"pgstack/{name}:{broken}", force=True)
            except docker.errors.APIError:
                pass


def test_a_postgres_minor_upgrade_replaces_postgres_on_its_data_directory(previous: Previous, tmp_path: Path) -> None:
    # a "new minor release": the same PostgreSQL under another image name, chosen for this project only
    stack = previous.stack
    current = stack_version()
    choice = tmp_path / "images.env"
    shutil.copy(REPO / ".state" / "images.env", choice)
    base = stack.image("POSTGRES_IMAGE")
    minor = f"pgstack/postgres:minor-{uuid.uuid4().hex[:8]}"
    client = docker.from_env()
    client.images.get(base).tag(minor)
    choice.write_text(choice.read_text().replace(f"POSTGRES_IMAGE={base}", f"POSTGRES_IMAGE={minor}"))
    version = f"{current}-minor"
    before = stack.container("postgres").id
    try:
        output = ok(run(["make", "-s", "upgrade"], stack, STACK_VERSION=version, OPS_IMAGE_CHOICE=str(choice)))
        assert f"upgraded from {current} to {version}" in output
        assert image_of(stack, "postgres") == minor and stack.container("postgres").id != before
        assert marker_rows(stack) == 1 and answers_a_query(stack)
        # and back: the release before, on the image it had
        ok(run(["make", "-s", "rollback"], stack, OPS_IMAGE_CHOICE=str(choice)))
        assert image_of(stack, "postgres") == base and image_of(stack, "mcp") == f"pgstack/mcp:{current}"
        assert marker_rows(stack) == 1
    finally:
        for image in (f"pgstack/mcp:{version}", f"pgstack/backup:{version}", minor):
            try:
                client.images.remove(image, force=True)
            except docker.errors.APIError:
                pass


def test_rollback_without_an_earlier_release_says_what_to_do() -> None:
    stack = Stack(project=f"pgstack-test-{uuid.uuid4().hex[:8]}", pg_port=free_port(), mcp_port=free_port())
    result = run(["make", "-s", "rollback"], stack, timeout=120)
    assert result.returncode != 0
    assert f"no release of project {stack.project} before the running one is recorded" in result.stderr
    assert "hint: make rollback returns to what make up or make upgrade last ran" in result.stderr
