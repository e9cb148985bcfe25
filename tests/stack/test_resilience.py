"""Data survives what operators do to the stack (restart, stop/start, down/up, rebuild), and PostgreSQL
comes back by itself after its process is SIGKILLed from the host. Each test breaks its own stack."""

from __future__ import annotations

import os
import signal
import time
import uuid

import docker
import psycopg

from tests.fixtures.stack import Stack, stack_version
from tests.helpers import wait_until


def write_marker(stack: Stack) -> str:
    marker = f"survivor-{uuid.uuid4()}@example.com"
    with psycopg.connect(stack.dsn("app_owner"), autocommit=True) as conn:
        conn.execute("INSERT INTO shop.customers (email, full_name, country) VALUES (%s, 'Survivor', 'DE')", (marker,))
    return marker


def marker_present(stack: Stack, marker: str) -> bool:
    with psycopg.connect(stack.dsn("mcp_reader")) as conn:
        row = conn.execute("SELECT count(*) FROM shop.customers WHERE email = %s", (marker,)).fetchone()
    return row == (1,)


def test_data_survives_restart_stop_start_down_up_and_rebuild(fresh_stack: Stack) -> None:
    marker = write_marker(fresh_stack)

    fresh_stack.compose("restart", "postgres")
    fresh_stack.wait_healthy("postgres")
    assert marker_present(fresh_stack, marker), "lost after restart"

    # stop: SIGINT, a fast shutdown that checkpoints within the stop_grace_period, so the next start needs no
    # crash recovery (a SIGKILL after the grace period would show "was interrupted" and "redo starts")
    postgres = fresh_stack.container("postgres")
    stopped_at = int(time.time())
    fresh_stack.compose("stop")
    postgres.reload()
    assert postgres.attrs["State"]["ExitCode"] == 0, postgres.attrs["State"]
    fresh_stack.compose("start")
    fresh_stack.wait_healthy()
    assert marker_present(fresh_stack, marker), "lost after stop/start"
    since_stop = postgres.logs(since=stopped_at).decode()
    assert "database system is shut down" in since_stop, since_stop[-3000:]
    assert "database system was shut down at" in since_stop, since_stop[-3000:]
    assert "was interrupted" not in since_stop and "redo starts" not in since_stop, since_stop[-3000:]

    fresh_stack.compose("down")  # no --volumes
    fresh_stack.up()
    assert marker_present(fresh_stack, marker), "lost after down/up"

    # a rebuild of the images, from scratch, and new containers for every service: under a version of its own,
    # since a version's images are never overwritten (ops_build_services)
    rebuilt = f"{stack_version()}-rebuild-{fresh_stack.project[-8:]}"
    fresh_stack.extra_env["STACK_VERSION"] = rebuilt
    try:
        fresh_stack.compose("build", "--no-cache", "mcp", "backup", timeout=1200)
        fresh_stack.compose("up", "-d", "--force-recreate", "postgres", "mcp", "backup")
        fresh_stack.wait_healthy()
        assert {fresh_stack.container(name).image.tags[0] for name in ("mcp", "backup")} == {
            f"pgstack/mcp:{rebuilt}",
            f"pgstack/backup:{rebuilt}",
        }
        assert marker_present(fresh_stack, marker), "lost after rebuild and recreate"
    finally:
        # about 800 MB a run: the containers go first (the fixture removes the volumes), then the images
        fresh_stack.compose("down", check=False)
        for name in ("mcp", "backup"):
            try:
                docker.from_env().images.remove(f"pgstack/{name}:{rebuilt}")
            except docker.errors.ImageNotFound:
                pass


def test_postgres_restarts_after_sigkill_and_keeps_committed_data(fresh_stack: Stack) -> None:
    marker = write_marker(fresh_stack)
    clients_started = {name: fresh_stack.container(name).attrs["State"]["StartedAt"] for name in ("mcp", "backup")}
    container = fresh_stack.container("postgres")
    restarts_before = container.attrs["RestartCount"]
    host_pid = container.attrs["State"]["Pid"]

    # SIGKILL the postmaster from the host, as the OOM killer or an operator's kill -9 would
    os.kill(host_pid, signal.SIGKILL)

    def restarted() -> bool:
        container.reload()
        return bool(container.attrs["RestartCount"] > restarts_before and container.attrs["State"]["Running"])

    wait_until(restarted, timeout=60, what="docker to restart the killed postgres container")
    fresh_stack.wait_healthy("postgres")
    assert marker_present(fresh_stack, marker)
    logs = container.logs(since=int(time.time()) - 120).decode()
    assert "database system was interrupted" in logs or "not properly shut down" in logs
    # the clients rode it out: same containers, healthy again, not restarted
    fresh_stack.wait_healthy("mcp", "backup")
    for name, started in clients_started.items():
        assert fresh_stack.container(name).attrs["State"]["StartedAt"] == started, f"{name} was restarted"
