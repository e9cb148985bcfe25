"""The stack on Docker Swarm (`make swarm-up` / `make swarm-down`, compose/stack.yaml, ops/swarm.sh), on a
two-node Swarm of the test's own (tests/fixtures/swarm.py): the manager holds the primary (label
pgstack.postgres=primary), the worker the hot standby (pgstack.standby=true); mcp replicas spread over both and
every node's HAProxy answers. Losing the worker moves its replicas to the manager and reads to the primary;
`swarm-down` leaves nothing of the stack behind but its volumes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.paths import REPO
from tests.fixtures.stack import Stack, prepare_images, stack_version
from tests.fixtures.swarm import ADDRESS_POOL, SwarmNode, clean_leftovers, make_bridge, remove_bridge
from tests.helpers import query_call, wait_until

STACK = "pgswarm"
MCP_PORT = 8080
STATS_PORT = 8404
REPLICAS = 3


class Cluster:
    """Two Swarm nodes, the stack's secrets and the environment `ops/swarm.sh` runs with."""

    def __init__(self, manager: SwarmNode, worker: SwarmNode, project: Stack) -> None:
        self.manager, self.worker, self.project = manager, worker, project

    def env(self) -> dict[str, str]:
        return {
            **self.project.env(),
            "DOCKER_HOST": self.manager.docker_host,
            "SWARM_STACK": STACK,
            "MCP_PORT": str(MCP_PORT),
            "HAPROXY_STATS_PORT": str(STATS_PORT),
            "MCP_REPLICAS": str(REPLICAS),
            "MCP_ALLOWED_HOSTS": f"{self.manager.address},{self.worker.address}",
            "SWARM_WAIT_TIMEOUT": "600",
        }

    def swarm_sh(self, action: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(REPO / "ops" / "swarm.sh"), action],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert result.returncode == 0, f"ops/swarm.sh {action}:\n{result.stderr[-4000:]}"
        return result

    def node_of_tasks(self, service: str) -> list[str]:
        """The node ID each running task of the service is on."""
        out = self.manager.docker(
            "service", "ps", f"{STACK}_{service}", "--filter", "desired-state=running", "-q"
        ).stdout.split()
        nodes = []
        for task in out:
            state, node = self.manager.docker(
                "inspect", "--format", "{{.Status.State}} {{.NodeID}}", task
            ).stdout.split()
            if state == "running":
                nodes.append(node)
        return nodes


def node_id(node: SwarmNode) -> str:
    return node.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    project = prepare_images(profile="scale")  # the images and a project's own secrets, on the host's daemon
    images = [
        project.image("POSTGRES_IMAGE"),
        project.image("HAPROXY_IMAGE"),
        f"pgstack/mcp:{stack_version()}",
        f"pgstack/backup:{stack_version()}",
    ]
    manager, worker = SwarmNode(0), SwarmNode(1)
    clean_leftovers(2)
    make_bridge()
    try:
        for node in (manager, worker):
            node.start()
            node.load_images(images)
        manager.docker("swarm", "init", "--advertise-addr", manager.address, "--default-addr-pool", ADDRESS_POOL)
        token = manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        worker.docker("swarm", "join", "--token", token, "--advertise-addr", worker.address, f"{manager.address}:2377")
        manager.docker("node", "update", "--label-add", "pgstack.postgres=primary", node_id(manager))
        manager.docker("node", "update", "--label-add", "pgstack.standby=true", node_id(worker))
        yield Cluster(manager, worker, project)
    finally:
        for node in (worker, manager):
            node.stop()
        remove_bridge()
        project.down()


def call(address: str, key: str, sql: str) -> dict[str, Any]:
    """One `query` call to a node's published MCP port (its HAProxy); a tool error fails the test."""
    result = query_call(address, MCP_PORT, key, sql)
    assert not result["isError"], result["content"][0]["text"]
    return result


def reads_from_standby(address: str, key: str) -> bool:
    return bool(call(address, key, "SELECT pg_is_in_recovery()")["structuredContent"]["rows"][0][0])


def test_the_swarm_stack_comes_up_spread_over_the_nodes_and_answers_on_each(cluster: Cluster) -> None:
    cluster.swarm_sh("up")
    manager, worker = node_id(cluster.manager), node_id(cluster.worker)
    assert cluster.node_of_tasks("postgres") == [manager]
    assert cluster.node_of_tasks("postgres-standby") == [worker]
    replicas = cluster.node_of_tasks("mcp")
    assert len(replicas) == REPLICAS and set(replicas) == {manager, worker}, replicas
    assert sorted(cluster.node_of_tasks("haproxy")) == sorted([manager, worker])  # global: one per node
    key = cluster.project.api_key
    for node in (cluster.manager, cluster.worker):
        # every call reads from the standby, whichever node's HAProxy takes it and whichever replica answers
        assert all(reads_from_standby(node.address, key) for _ in range(2 * REPLICAS))
    # the secrets are Swarm secrets, not files from the host
    secrets = cluster.manager.docker("secret", "ls", "--format", "{{.Name}}").stdout.split()
    assert f"{STACK}_mcp_reader_password" in secrets and f"{STACK}_tls_server_key" in secrets


def test_losing_the_standby_node_moves_replicas_and_reads_to_the_manager(cluster: Cluster) -> None:
    key = cluster.project.api_key
    manager = node_id(cluster.manager)
    cluster.worker.disconnect()
    try:
        wait_until(
            lambda: (
                cluster.manager.docker(
                    "node", "inspect", "--format", "{{.Status.State}}", node_id(cluster.worker)
                ).stdout.strip()
                == "down"
            ),
            timeout=120,
            what="the manager to see the worker node down",
        )
        wait_until(
            lambda: cluster.node_of_tasks("mcp") == [manager] * REPLICAS,
            timeout=180,
            what=f"{REPLICAS} mcp replicas running on the manager",
        )
        # no standby answers any more: reads move to the primary, and every call still succeeds
        wait_until(
            lambda: not any(reads_from_standby(cluster.manager.address, key) for _ in range(2 * REPLICAS)),
            timeout=120,
            what="reads on the primary",
        )
        assert [reads_from_standby(cluster.manager.address, key) for _ in range(10)] == [False] * 10
    finally:
        cluster.worker.reconnect()
    wait_until(
        lambda: (
            cluster.manager.docker(
                "node", "inspect", "--format", "{{.Status.State}}", node_id(cluster.worker)
            ).stdout.strip()
            == "ready"
        ),
        timeout=120,
        what="the worker node back",
    )


def test_swarm_down_removes_the_stack_and_keeps_its_volumes(cluster: Cluster) -> None:
    cluster.swarm_sh("down")
    for node in (cluster.manager, cluster.worker):
        label = f"label=com.docker.stack.namespace={STACK}"
        wait_until(
            lambda node=node, label=label: not node.docker("ps", "-aq", "--filter", label).stdout.strip(),
            timeout=120,
            what=f"no container of the stack on {node.name}",
        )
    manager = cluster.manager
    assert manager.docker("service", "ls", "-q").stdout.strip() == ""
    assert manager.docker("secret", "ls", "-q").stdout.strip() == ""
    assert manager.docker("config", "ls", "-q").stdout.strip() == ""
    networks = manager.docker("network", "ls", "--filter", f"label=com.docker.stack.namespace={STACK}", "-q")
    assert networks.stdout.strip() == ""
    volumes = manager.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert f"{STACK}_pgdata" in volumes and f"{STACK}_backups" in volumes
