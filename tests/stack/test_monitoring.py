"""The monitoring profile (`make up PROFILE=monitoring`, compose/monitoring.yaml): Prometheus scrapes the MCP
server and the backup sidecar, loads every alert rule, and a real alert fires: the backup sidecar stopped,
`TargetDown` goes from pending to firing for it (its `for` is two minutes)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.net import free_port
from tests.fixtures.stack import Stack, start_stack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def monitored() -> Iterator[Stack]:
    with start_stack(profile="monitoring", env={"PROMETHEUS_PORT": str(free_port())}) as running:
        yield running


def api(stack: Stack, path: str, **query: str) -> Any:
    url = f"http://127.0.0.1:{stack.extra_env['PROMETHEUS_PORT']}/api/v1/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        document = json.loads(response.read())
    assert document["status"] == "success", document
    return document["data"]


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(2)


def test_prometheus_scrapes_the_mcp_server_and_the_backup_sidecar(monitored: Stack) -> None:
    def healthy() -> dict[str, str]:
        return {target["labels"]["job"]: target["health"] for target in api(monitored, "targets")["activeTargets"]}

    until(lambda: healthy() == {"prometheus": "up", "mcp": "up", "backup": "up"}, 90, f"every target up: {healthy()}")
    for metric in ("pgbackup_up", "pgmcp_pool_connections"):
        assert api(monitored, "query", query=metric)["result"], f"no {metric} scraped"


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
    finally:
        monitored.compose("start", "backup")
        monitored.wait_healthy("backup")
