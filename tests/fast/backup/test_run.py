"""`python -m pgbackup run` as the container runs it: backup on start, /status and /metrics on the
status port, a healthy health check, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from devtools.net import free_port
from devtools.paths import REPO
from pgbackup.__main__ import main
from pgbackup.errors import ExitCode
from tests.fast.backup.helpers import EnvFactory
from tests.helpers import wait_until


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return str(response.read().decode())


def status_after_first_backup(port: int) -> dict[str, Any] | None:
    status: dict[str, Any] = json.loads(fetch(port, "/status"))
    state = status["state"] or {}
    return status if state.get("last_outcome") == "success" and not status["running"] else None


def test_run_serves_status_and_metrics_and_stops_on_sigterm(make_env: EnvFactory, tmp_path: Path) -> None:
    port = free_port()
    env = make_env(
        BACKUP_STATUS_PORT=str(port), BACKUP_STATUS_BIND="127.0.0.1", BACKUP_ON_START="true", BACKUP_LOG_LEVEL="INFO"
    )
    child_env = {key: value for key, value in os.environ.items() if not key.startswith("BACKUP_")}
    child_env.update(env, PYTHONPATH=str(REPO / "services" / "backup" / "src"))
    process = subprocess.Popen(
        [sys.executable, "-m", "pgbackup", "run"],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = wait_until(
            lambda: status_after_first_backup(port),
            timeout=120,
            what="the first backup in /status",
            describe=lambda: str(process.poll()),
        )
        assert isinstance(status, dict)
        assert status["health"]["healthy"] is True
        assert status["sets"]["count"] == 1 and status["sets"]["verified"] == 1
        assert status["schedule"] == "every 60 minutes"
        metrics = fetch(port, "/metrics")
        for line in (
            "pgbackup_healthy 1.0",
            "pgbackup_sets 1.0",
            "pgbackup_failures_total 0.0",
            "pgbackup_successes_total 1.0",
            "pgbackup_running 0.0",
        ):
            assert line in metrics.splitlines(), line
        assert "pgbackup_last_success_timestamp_seconds " in metrics
        assert main(["healthcheck"], environ=env) == ExitCode.OK
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "received SIGTERM" in stdout and "backup loop stopped after runs=1 failures=0" in stdout
