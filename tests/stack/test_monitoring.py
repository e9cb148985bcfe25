"""The monitoring profile (`make up PROFILE=monitoring`, compose/monitoring.yaml): Prometheus scrapes the MCP
server, the backup sidecar and postgres_exporter, loads every alert rule, and a real alert goes end to end: the
backup sidecar stopped, `TargetDown` goes from pending to firing for it (its `for` is two minutes), and
Alertmanager posts it to BACKUP_WEBHOOK_URL, a receiver this test runs on the stack's internal network (read
through `docker exec`)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from devtools.net import free_port
from tests.fixtures.stack import Stack, start_stack

pytestmark = pytest.mark.stack


RECEIVER = "alert-receiver"
# A webhook receiver: one JSON line per POST in /tmp/hooks.jsonl, 200 to every request
RECEIVER_CODE = """
import http.server
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open("/tmp/hooks.jsonl", "ab") as hooks:
            hooks.write(body.replace(b"\\n", b" ") + b"\\n")
        self.send_response(200)
        self.end_headers()
http.server.ThreadingHTTPServer(("", 8000), Hook).serve_forever()
"""


@pytest.fixture(scope="module")
def monitored() -> Iterator[Stack]:
    env = {
        "PROMETHEUS_PORT": str(free_port()),
        "ALERTMANAGER_PORT": str(free_port()),
        "ALERTMANAGER_GROUP_WAIT": "5s",
        "BACKUP_WEBHOOK_URL": f"http://{RECEIVER}:8000/alerts",
    }
    with start_stack(profile="monitoring", env=env) as running:
        client = docker.from_env()
        receiver = client.containers.run(
            running.image("PYTHON_IMAGE"),
            ["python3", "-c", RECEIVER_CODE],
            name=f"{running.project}-{RECEIVER}",
            network=f"{running.project}_backend",
            detach=True,
            user="65534:65534",
        )
        try:
            client.networks.get(f"{running.project}_backend").disconnect(receiver)
            client.networks.get(f"{running.project}_backend").connect(receiver, aliases=[RECEIVER])
            yield running
        finally:
            receiver.remove(force=True)


def hooks(stack: Stack) -> list[dict[str, Any]]:
    """What the receiver got: Alertmanager's webhook documents, oldest first."""
    receiver = docker.from_env().containers.get(f"{stack.project}-{RECEIVER}")
    code, output = receiver.exec_run(["sh", "-c", "cat /tmp/hooks.jsonl 2>/dev/null || true"])
    assert code == 0, output
    return [json.loads(line) for line in output.decode().splitlines() if line.strip()]


def api(stack: Stack, path: str, **query: str) -> Any:
    """Prometheus's HTTP API on its loopback port: the `data` of a successful answer."""
    url = f"http://127.0.0.1:{stack.extra_env['PROMETHEUS_PORT']}/api/v1/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        document = json.loads(response.read())
    assert document["status"] == "success", document
    return document["data"]


def alertmanager(stack: Stack, path: str) -> Any:
    """Alertmanager's v2 API on its loopback port."""
    url = f"http://127.0.0.1:{stack.extra_env['ALERTMANAGER_PORT']}/api/v2/{path}"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        return json.loads(response.read())


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(2)


def test_prometheus_scrapes_every_target_and_finds_alertmanager(monitored: Stack) -> None:
    def healthy() -> dict[str, str]:
        return {target["labels"]["job"]: target["health"] for target in api(monitored, "targets")["activeTargets"]}

    every = {"prometheus": "up", "mcp": "up", "backup": "up", "postgres": "up", "alertmanager": "up"}
    until(lambda: healthy() == every, 90, f"every target up: {healthy()}")
    for metric in ("pgbackup_up", "pgmcp_pool_connections", "pg_settings_max_connections"):
        assert api(monitored, "query", query=metric)["result"], f"no {metric} scraped"
    # postgres_exporter reads as backup_operator, with pg_monitor: every session, the WAL directory
    (up,) = api(monitored, "query", query="pg_up")["result"]
    assert up["value"][1] == "1"
    assert api(monitored, "query", query="pg_wal_segments")["result"], "the wal collector needs pg_monitor"
    until(lambda: bool(api(monitored, "alertmanagers")["activeAlertmanagers"]), 60, "Prometheus found Alertmanager")
    # the configuration start.sh wrote holds the webhook as a file, never the URL itself
    check = monitored.exec("alertmanager", "amtool", "check-config", "/tmp/alertmanager.yml")
    assert "SUCCESS" in check.stdout, check.stdout + check.stderr
    assert RECEIVER not in json.dumps(alertmanager(monitored, "status")["config"])


def test_every_alert_rule_is_loaded_and_evaluates(monitored: Stack) -> None:
    def rules() -> list[dict[str, Any]]:
        return [rule for group in api(monitored, "rules")["groups"] for rule in group["rules"]]

    until(lambda: len(rules()) == 18 and all(rule.get("lastEvaluation", "0001").startswith("20") for rule in rules()),
          60, "18 rules evaluated")  # fmt: skip
    assert all(rule["health"] == "ok" for rule in rules()), [r for r in rules() if r["health"] != "ok"]


def test_a_stopped_backup_sidecar_fires_target_down(monitored: Stack) -> None:
    monitored.compose("stop", "backup")
    try:

        def state() -> str:
            alerts = api(monitored, "alerts")["alerts"]
            mine = [a for a in alerts if a["labels"]["alertname"] == "TargetDown" and a["labels"]["job"] == "backup"]
            return mine[0]["state"] if mine else "inactive"

        until(lambda: state() == "pending", 90, "TargetDown pending for backup")
        until(lambda: state() == "firing", 240, "TargetDown firing for backup")

        def delivered() -> list[dict[str, Any]]:
            return [
                alert
                for hook in hooks(monitored)
                for alert in hook.get("alerts", [])
                if hook.get("status") == "firing" and alert["labels"].get("alertname") == "TargetDown"
            ]

        until(lambda: bool(delivered()), 90, "Alertmanager posting TargetDown to the webhook")
        (alert,) = delivered()
        assert alert["labels"]["job"] == "backup" and alert["labels"]["severity"] == "page"
        assert alert["annotations"]["runbook"] == "runbooks/postgres-down.md"
        assert [a for a in alertmanager(monitored, "alerts") if a["labels"]["alertname"] == "TargetDown"]
    finally:
        monitored.compose("start", "backup")
        monitored.wait_healthy("backup")
