"""The meaningful scenarios of @modelcontextprotocol/conformance pass (ops/conformance.sh installs the pinned Node 22
and suite from npm; if it cannot, this test fails: it never skips)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# the scenarios that hold for any server; the others expect the reference server's own tool, resource and prompt
# names. tools-call-error calls a tool that does not exist (a tool error, not a protocol error), and
# completion-complete asks for completions (ours complete the table resource template's arguments).
MEANINGFUL = (
    "server-initialize",
    "ping",
    "tools-list",
    "tools-call-error",
    "completion-complete",
    "resources-list",
    "prompts-list",
    "dns-rebinding-protection",
)


def test_conformance_suite_passes(tmp_path: Path) -> None:
    env = {**os.environ, "CONFORMANCE_REPORT_DIR": str(tmp_path), "CONFORMANCE_SCENARIOS": " ".join(MEANINGFUL)}
    result = subprocess.run(
        [str(REPO / "ops" / "conformance.sh")], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.stdout.splitlines()[: len(MEANINGFUL)] == [f"PASS {scenario}" for scenario in MEANINGFUL]
    checks = [check for path in tmp_path.glob("server-*/checks.json") for check in json.loads(path.read_text())]
    assert {check["status"] for check in checks} == {"SUCCESS"}, checks
    scenarios = {
        path.parent.name.split("-20")[0].removeprefix("server-") for path in tmp_path.glob("server-*/checks.json")
    }
    assert scenarios == set(MEANINGFUL)
    dns = [check for check in checks if check["name"] in ("DNSRebindingRejected", "LocalhostHostAccepted")]
    assert len(dns) == 2  # a foreign Host is refused and loopback is served
