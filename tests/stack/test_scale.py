"""The scaled-out stack (`make up PROFILE=scale`, compose/scale.yaml): three MCP replicas behind HAProxy on the
published port, reading from a hot standby through libpq's host list (prefer-standby, random), with the primary
as the fallback; MCP_MAX_REPLICA_LAG keeps them off a standby that lags; the standby does not cancel a long query
for replay; a replica killed under load loses at most its in-flight calls.

Traffic goes only to the loopback ports (HAProxy's MCP port and stats port, PostgreSQL's) and through
`docker exec`; container addresses are only compared with what HAProxy reports, never connected to.
"""

from __future__ import annotations

import csv
import dataclasses
import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import docker
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from devtools.paths import REPO
from tests.fixtures.stack import Stack, start_stack
from tests.helpers import query_call, wait_until

REPLICAS = 3
MAX_REPLICA_LAG_S = 2
SCALE_ENV = {
    "MCP_REPLICAS": str(REPLICAS),
    "MCP_MAX_REPLICA_LAG": f"{MAX_REPLICA_LAG_S}s",
    # the Locust run below uses one key for all its users: the per-key limit (per replica) is not under test
    "MCP_MAX_CONCURRENCY_PER_KEY": "32",
}
LOCUST_USERS = 8
WHERE = "SELECT pg_is_in_recovery()"


@pytest.fixture(scope="module")
def scale() -> Iterator[Stack]:
    with start_stack(profile="scale", env=SCALE_ENV) as running:
        yield running


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- reaching the stack ------------------------------------------------------------------------------------------


def call(stack: Stack, sql: str) -> dict[str, Any]:
    """One `query` tool call through HAProxy; the result object."""
    return query_call("127.0.0.1", stack.mcp_port, stack.api_key, sql)


def on_standby(stack: Stack) -> bool:
    """Where one tool call read: True on the standby, False on the primary (a failed call fails the test)."""
    result = call(stack, WHERE)
    assert not result["isError"], result["content"][0]["text"]
    return bool(result["structuredContent"]["rows"][0][0])


def standby_sql(stack: Stack, sql: str) -> str:
    """`psql -tAc SQL` as postgres on the standby, through docker exec."""
    script = (
        'PGPASSWORD="$(cat /run/secrets/postgres_password)" PGSSLMODE=verify-full '
        "PGSSLROOTCERT=/run/secrets/tls_ca_cert "
        'psql --no-psqlrc -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d app -tAc "$1"'
    )
    return stack.exec("postgres-standby", "bash", "-c", script, "psql", sql).stdout.strip()


def haproxy_servers(stack: Stack) -> dict[str, dict[str, str]]:
    """HAProxy's stats (its CSV on the published stats port) of each server of the mcp backend, by name."""
    connection = http.client.HTTPConnection("127.0.0.1", int(stack.extra_env["HAPROXY_STATS_PORT"]), timeout=10)
    try:
        connection.request("GET", "/stats;csv")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    rows = csv.DictReader(text.lstrip("# ").splitlines())
    return {
        row["svname"]: row for row in rows if row["pxname"] == "mcp" and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def replica_containers(stack: Stack) -> list[Any]:
    ids = stack.compose("ps", "-q", "mcp").stdout.split()
    client = docker.from_env()
    return [client.containers.get(container_id) for container_id in ids]


def tool_calls(container: Any) -> float:
    """The sum of pgmcp_tool_calls_total over every worker of one replica (its /metrics, through docker exec)."""
    script = (
        "import urllib.request as u; print(u.urlopen(u.Request('http://127.0.0.1:8080/metrics', "
        "headers={'Host': 'mcp'}), timeout=10).read().decode())"
    )
    code, output = container.exec_run(["python", "-c", script])
    assert code == 0, output.decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in output.decode().splitlines()
        if line.startswith("pgmcp_tool_calls_total{")
    )


@asynccontextmanager
async def sdk_client(stack: Stack) -> AsyncIterator[Client]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {stack.api_key}"}) as http:
        async with Client(streamable_http_client(stack.mcp_url, http_client=http), cache=None) as client:
            yield client


# -- the tests ---------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_replicas_behind_haproxy_read_from_the_standby(scale: Stack) -> None:
    async with sdk_client(scale) as client:
        # a model may ask where it reads and how fresh that is: the guard lets replication state through
        result = await client.call_tool(
            "query",
            {"sql": f"{WHERE} AS standby, current_user AS reader, pg_last_wal_replay_lsn() IS NOT NULL AS replays"},
        )
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["rows"] == [[True, "mcp_reader", True]]
    servers = haproxy_servers(scale)
    assert (
        sorted(row["status"] for row in servers.values() if not row["status"].startswith("MAINT")) == ["UP"] * REPLICAS
    )
    # HAProxy's own Prometheus metrics, on the same loopback stats port
    connection = http.client.HTTPConnection("127.0.0.1", int(scale.extra_env["HAPROXY_STATS_PORT"]), timeout=10)
    connection.request("GET", "/metrics")
    exposition = connection.getresponse().read().decode()
    connection.close()
    assert f'haproxy_backend_active_servers{{proxy="mcp"}} {REPLICAS}' in exposition
    # every replica, each of its workers, reports the standby in /readyz (round robin reaches them all)
    seen: set[tuple[str, int]] = set()
    for _ in range(4 * REPLICAS):
        connection = http.client.HTTPConnection("127.0.0.1", scale.mcp_port, timeout=10)
        connection.request("GET", "/readyz", headers={"Host": f"127.0.0.1:{scale.mcp_port}"})
        ready = json.loads(connection.getresponse().read())
        connection.close()
        assert ready["status"] == "ready" and ready["database"]["role"] == "standby", ready
        assert ready["database"]["host"] == "postgres-standby"
        seen.add((ready["database"]["host"], ready["worker"]))
    # the standby streams through its own slot, as the replication role, with feedback on
    with psycopg.connect(scale.dsn()) as conn:
        slot = conn.execute("SELECT slot_name, active FROM pg_replication_slots").fetchall()
        sender = conn.execute("SELECT usename, application_name, state FROM pg_stat_replication").fetchall()
    assert slot == [("standby_1", True)]
    assert sender == [("replicator", "standby_1", "streaming")]
    assert standby_sql(scale, "SHOW hot_standby_feedback") == "on"


def test_reads_move_to_the_primary_when_the_standby_stops_and_come_back(scale: Stack) -> None:
    assert on_standby(scale)
    scale.compose("stop", "postgres-standby")
    try:
        # no failed call: a pooled connection to the stopped standby is found broken and replaced on the primary
        assert [on_standby(scale) for _ in range(20)] == [False] * 20
    finally:
        scale.compose("start", "postgres-standby")
        scale.wait_healthy("postgres-standby")
        wait_until(
            lambda: all(on_standby(scale) for _ in range(2 * REPLICAS)), timeout=60, what="reads back on the standby"
        )


def test_a_standby_that_lags_past_the_limit_stops_receiving_queries(scale: Stack) -> None:
    assert on_standby(scale)
    stop = threading.Event()

    def write() -> None:
        with psycopg.connect(scale.dsn(), autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO lag_probe VALUES (1)")
                stop.wait(0.1)

    with psycopg.connect(scale.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE lag_probe (i int)")
    writer = threading.Thread(target=write, daemon=True)
    try:
        standby_sql(scale, "SELECT pg_wal_replay_pause()")
        writer.start()
        lag = "SELECT extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) > 3"
        wait_until(lambda: standby_sql(scale, lag) == "t", timeout=30, what="the paused standby lagging 3 s")
        # every worker of every replica samples its connections each second and keeps off the standby
        wait_until(
            lambda: not any(on_standby(scale) for _ in range(4 * REPLICAS)),
            timeout=30,
            what=f"no query on a standby more than MCP_MAX_REPLICA_LAG={MAX_REPLICA_LAG_S}s behind",
        )
        assert [on_standby(scale) for _ in range(30)] == [False] * 30
    finally:
        standby_sql(scale, "SELECT pg_wal_replay_resume()")
        stop.set()
        writer.join(timeout=10)
        with psycopg.connect(scale.dsn(), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS lag_probe")
    wait_until(
        lambda: all(on_standby(scale) for _ in range(2 * REPLICAS)), timeout=60, what="reads back on the standby"
    )


def test_a_five_second_query_on_the_standby_survives_heavy_writes_on_the_primary(scale: Stack) -> None:
    conflicts = (
        "SELECT confl_snapshot + confl_lock + confl_bufferpin FROM pg_stat_database_conflicts WHERE datname = 'app'"
    )
    before = standby_sql(scale, conflicts)
    # one snapshot held for 5 s on the standby (pg_sleep: the guard would refuse it through MCP), while the
    # primary rewrites and vacuums the table it reads
    script = (
        'PGPASSWORD="$(cat /run/secrets/postgres_password)" PGSSLMODE=verify-full '
        "PGSSLROOTCERT=/run/secrets/tls_ca_cert psql --no-psqlrc -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d app "
        "-tA -c 'BEGIN ISOLATION LEVEL REPEATABLE READ' -c 'SELECT count(*), sum(total) FROM shop.orders' "
        "-c 'SELECT pg_sleep(5)' -c 'SELECT count(*), sum(total) FROM shop.orders' -c 'COMMIT'"
    )
    reader = subprocess.Popen(
        [str(REPO / "ops" / "compose.sh"), "exec", "-T", "postgres-standby", "bash", "-c", script],
        env=scale.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rounds = 0
    with psycopg.connect(scale.dsn(), autocommit=True) as conn:
        while reader.poll() is None:
            conn.execute("UPDATE shop.orders SET note = note WHERE order_id %% 4 = %s", [rounds % 4])
            conn.execute("VACUUM shop.orders")
            rounds += 1
    out, err = reader.communicate()
    assert reader.returncode == 0, err
    lines = [line for line in out.splitlines() if "|" in line]
    assert len(lines) == 2 and lines[0] == lines[1], out  # the same snapshot before and after 5 s
    assert rounds >= 3, "the primary must have rewritten and vacuumed the table while the query ran"
    assert standby_sql(scale, conflicts) == before


def test_the_backup_sidecar_can_dump_from_the_standby(scale: Stack) -> None:
    """DUMP_FROM=postgres-standby sets BACKUP_PGHOST; here the one run of `make backup-now` gets it instead."""
    result = scale.compose(
        "exec", "-T", "-e", "BACKUP_PGHOST=postgres-standby", "backup", "python", "-m", "pgbackup", "backup"
    )
    assert "verified" in result.stdout, result.stdout + result.stderr
    assert "postgres-standby" in result.stdout + result.stderr, result.stdout + result.stderr


def loaded(stack: Stack, tmp_path: Path, during: Callable[[list[Any]], Any]) -> tuple[int, int, str, Any]:
    """A bounded Locust run through HAProxy (LOCUST_USERS users, 20 s); once every replica takes load,
    `during(replicas)` runs. Returns (requests, failures, Locust's output, what `during` returned)."""
    containers = replica_containers(stack)
    assert len(containers) == REPLICAS
    servers_before = haproxy_servers(stack)
    locust = subprocess.Popen(
        [
            sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py"), "--headless",
            "--only-summary", "--host", f"http://127.0.0.1:{stack.mcp_port}", "-u", str(LOCUST_USERS),
            "-r", str(LOCUST_USERS), "-t", "20s", "--csv", str(tmp_path / "run"),
        ],
        env={**os.environ, "MCP_API_KEYS": stack.api_key},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: all(
                int(row["stot"]) > int(servers_before[name]["stot"]) + 50
                for name, row in haproxy_servers(stack).items()
                if row["status"] == "UP"
            ),
            timeout=30,
            what="the load reaching every replica",
        )
        outcome = during(containers)
        output, _ = locust.communicate(timeout=120)
    finally:
        if locust.poll() is None:
            locust.kill()
    with (tmp_path / "run_stats.csv").open() as stats:
        total = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    return int(total["Request Count"]), int(total["Failure Count"]), output, outcome


def restore_replicas(stack: Stack) -> None:
    stack.compose("up", "-d", "--no-recreate", "--scale", f"mcp={REPLICAS}", "mcp")
    # a killed replica is started again by `up`: wait until every one runs, then until each is healthy (the wait
    # gives up early on a container it sees exited)
    wait_until(
        lambda: [container.status for container in replica_containers(stack)].count("running") == REPLICAS,
        timeout=60,
        what=f"{REPLICAS} mcp replicas running",
    )
    stack.wait_healthy("mcp")
    wait_until(
        lambda: [row["status"] for row in haproxy_servers(stack).values()].count("UP") == REPLICAS,
        timeout=60,
        what=f"HAProxy seeing {REPLICAS} replicas up",
    )


def test_a_replica_stopped_under_load_drains_without_a_failed_call(scale: Stack, tmp_path: Path) -> None:
    def stop_one(containers: list[Any]) -> None:
        containers[-1].stop(timeout=15)  # SIGTERM: the server finishes its calls in flight, then exits

    try:
        requests, failures, output, _ = loaded(scale, tmp_path, stop_one)
    finally:
        restore_replicas(scale)
    assert requests > 500 and failures == 0, output


def test_killing_a_replica_under_load_loses_at_most_its_in_flight_calls(scale: Stack, tmp_path: Path) -> None:
    containers = replica_containers(scale)
    before = {container.id: tool_calls(container) for container in containers}
    servers_before = haproxy_servers(scale)

    def kill_one(replicas: list[Any]) -> Any:
        victim = replicas[0]
        victim.kill()  # SIGKILL: no draining, its in-flight calls are lost
        return victim

    try:
        requests, failures, output, victim = loaded(scale, tmp_path, kill_one)
    except BaseException:
        restore_replicas(scale)
        raise
    assert requests > 500, output
    # each Locust user has one call in flight at a time: the victim held at most all of them
    assert failures <= LOCUST_USERS, output
    # the survivors' metrics add up: each counted every call HAProxy says it answered
    survivors = [container for container in containers if container.id != victim.id]
    answered = {
        name: int(row["stot"]) - int(servers_before.get(name, {"stot": "0"})["stot"])
        for name, row in haproxy_servers(scale).items()
    }
    addresses = {row["addr"].rsplit(":", 1)[0]: name for name, row in haproxy_servers(scale).items() if row.get("addr")}
    for container in survivors:
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][f"{scale.project}_mcp-edge"]["IPAddress"]
        name = addresses[address]
        assert tool_calls(container) - before[container.id] == answered[name], (name, output)
    restore_replicas(scale)


HOLD_AT_THE_LIMIT = """
import http.client, json, select, socket, sys, time
key, limit, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
head = ("POST /mcp HTTP/1.1\\r\\nHost: 127.0.0.1:8080\\r\\nAuthorization: Bearer " + key
        + "\\r\\nContent-Type: application/json\\r\\nAccept: application/json\\r\\nContent-Length: 1000\\r\\n\\r\\n{")
held = []
for _ in range(limit):  # requests whose body is still arriving: each holds a slot of the key
    sock = socket.create_connection(("127.0.0.1", 8080), timeout=30)
    sock.sendall(head.encode())
    held.append(sock)
time.sleep(1.0)
answered = len(select.select(held, [], [], 0)[0])  # a refused one would have its 429 already
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
extra = http.client.HTTPConnection("127.0.0.1", 8080, timeout=30)
extra.request("POST", "/mcp", body=body, headers={"Host": "127.0.0.1:8080", "Authorization": "Bearer " + key,
              "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
              "MCP-Protocol-Version": "2025-06-18"})
print(json.dumps({"answered_early": answered, "extra": extra.getresponse().status}), flush=True)
time.sleep(hold)
"""


def test_the_per_key_limit_is_each_replicas_own(scale: Stack) -> None:
    """MCP_MAX_CONCURRENCY_PER_KEY counts per replica (all its workers together), as documented: with the key at
    its limit on one replica, a second replica still takes as many of its calls, and refuses only the one over."""
    first, second = replica_containers(scale)[:2]
    limit = int(SCALE_ENV["MCP_MAX_CONCURRENCY_PER_KEY"])
    with subprocess.Popen(
        ["docker", "exec", first.id, "python", "-c", HOLD_AT_THE_LIMIT, scale.api_key, str(limit), "20"],
        stdout=subprocess.PIPE,
        text=True,
    ) as holding:
        try:
            assert holding.stdout is not None
            at_first = json.loads(holding.stdout.readline())  # printed while it keeps holding for 20 s
            code, output = second.exec_run(["python", "-c", HOLD_AT_THE_LIMIT, scale.api_key, str(limit), "0"])
            assert code == 0, output.decode()
            at_second = json.loads(output.decode().strip().splitlines()[-1])
        finally:
            holding.kill()
    assert at_first == {"answered_early": 0, "extra": 429}
    assert at_second == {"answered_early": 0, "extra": 429}, "the second replica counted the first one's calls"


def test_make_up_without_the_profile_goes_back_to_the_small_stack(scale: Stack) -> None:
    """What ops/up.sh runs without PROFILE: the standby and HAProxy go, one mcp publishes the port again."""
    small = dataclasses.replace(scale, extra_env={**scale.extra_env, "PROFILE": ""})
    small.compose("up", "-d", "--remove-orphans", "postgres")
    small.compose("up", "-d", "mcp", "backup")
    small.wait_healthy("mcp", "backup")
    services = sorted(small.compose("ps", "--format", "{{.Service}}").stdout.split())
    assert services == ["backup", "mcp", "postgres"]
    wait_until(lambda: not on_standby(small), timeout=60, what="the one mcp answering on the published port")

    # and make clean, without PROFILE, still removes the standby's volume (ops/clean.sh layers every profile)
    def volumes() -> list[Any]:
        return list(docker.from_env().volumes.list(filters={"name": f"{scale.project}_pgdata"}))

    assert {volume.name for volume in volumes()} >= {f"{scale.project}_pgdata-standby"}
    cleaned = subprocess.run(
        [str(REPO / "ops" / "clean.sh")],
        env={**small.env(), "FORCE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert cleaned.returncode == 0, cleaned.stderr
    assert volumes() == []
