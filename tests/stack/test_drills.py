"""Drills at any size in the Compose stack: `make restore-drill` with a memory budget too small for the set drills
on a scratch volume it creates and removes, the report says `disk` and RTO is measured; without that volume a
drill that must go to disk stops at its scratch check and names the fix; `make drills` lists the drills and
writes the latest with its trend; the sidecar's own drill goes to disk on the backups volume."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from pgbackup.errors import ExitCode
from tests.fixtures.stack import REPO, Stack

SCRATCH_LABEL = "com.pgstack.drill-scratch"


def make(stack: Stack, target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), target],
        env={**stack.env(), **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def scratch_volumes(stack: Stack) -> list[str]:
    listed = subprocess.run(
        ["docker", "volume", "ls", "--quiet", "--filter", f"label={SCRATCH_LABEL}={stack.project}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def newest_report(stack: Stack) -> dict[str, Any]:
    names = sorted(stack.exec("backup", "ls", "/backups/drills").stdout.split())
    report: dict[str, Any] = json.loads(stack.exec("backup", "cat", f"/backups/drills/{names[-1]}").stdout)
    return report


def test_a_drill_over_the_memory_budget_runs_on_a_scratch_volume_that_is_removed_after(
    stack: Stack, tmp_path: Path
) -> None:
    assert scratch_volumes(stack) == []
    result = make(stack, "restore-drill", {"BACKUP_DRILL_MEMORY_BUDGET": "1MiB"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PASSED" in result.stdout and "scratch: disk (/drill-scratch)" in result.stdout
    report = newest_report(stack)
    assert report["passed"] is True
    assert report["scratch"]["kind"] == "disk" and report["scratch"]["directory"] == "/drill-scratch"
    assert report["scratch"]["memory_budget_bytes"] == 1 << 20
    assert report["scratch"]["estimated_bytes"] > 1 << 20
    assert "over the memory budget" in report["scratch"]["reason"]
    assert 0 < report["rto_seconds"] <= report["max_rto_seconds"]
    assert scratch_volumes(stack) == [], "the drill's scratch volume must be gone after the run"

    # the trend and the list, read from the host
    listed = make(stack, "drills", {"REPORTS_DIR": str(tmp_path)})
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    line = next(line for line in listed.stdout.splitlines() if report["started_at"] in line)
    assert report["set_id"] in line and "passed" in line and "disk" in line
    markdown = (tmp_path / "drills.md").read_text()
    assert f"## Latest: set {report['set_id']}, PASSED" in markdown and "## Trend" in markdown
    assert "| scratch | disk (/drill-scratch)" in markdown
    assert "<svg" in (tmp_path / "drills.html").read_text()


def test_without_a_scratch_volume_a_drill_that_needs_disk_names_the_fix(stack: Stack) -> None:
    result = stack.compose(
        *("run", "--rm", "-T", "-e", "BACKUP_DRILL_SCRATCH=disk", "restore-drill", "drill"), check=False, timeout=600
    )
    assert result.returncode == ExitCode.VERIFY, result.stdout[-3000:] + result.stderr[-3000:]
    assert "FAIL  scratch" in result.stdout and "/drill-scratch is not writable" in result.stdout
    report = newest_report(stack)
    assert [check["name"] for check in report["checks"] if not check["ok"]] == ["scratch"]


def test_the_sidecar_drills_a_set_over_its_budget_on_the_backups_volume(stack: Stack) -> None:
    result = stack.exec(
        "backup", "env", "BACKUP_DRILL_MEMORY_BUDGET=1MiB", "python", "-m", "pgbackup", "drill", check=False
    )
    assert result.returncode == ExitCode.OK, result.stdout[-3000:] + result.stderr[-3000:]
    report = newest_report(stack)
    assert report["passed"] is True and report["rto_seconds"] > 0
    assert report["scratch"]["kind"] == "disk" and report["scratch"]["directory"] == "/backups/drill-scratch"
    assert stack.exec("backup", "ls", "-A", "/backups/drill-scratch").stdout.split() == []
