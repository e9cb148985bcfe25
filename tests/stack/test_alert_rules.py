"""`promtool` on the alert rules, in the Prometheus image the stack uses (the official one, or the stand-in
from Debian's prometheus and promtool packages): the rules load, every unit test in
tests/prometheus/alerts.test.yml passes, and a test whose expectation is wrong fails (so a passing run means
the expectations were checked)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devtools.paths import REPO

pytestmark = pytest.mark.stack

RULES_DIR = REPO / "compose" / "prometheus"
TESTS_DIR = REPO / "tests" / "prometheus"


def prometheus_image() -> str:
    """The image ops/images.sh chose for PROFILE=monitoring (building the stand-in when no registry answers)."""
    result = subprocess.run(
        [str(REPO / "ops" / "images.sh")], env={**os.environ, "PROFILE": "monitoring"}, capture_output=True,
        text=True, timeout=1200, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for line in (REPO / ".state" / "images.env").read_text().splitlines():
        if line.startswith("PROMETHEUS_IMAGE="):
            return line.partition("=")[2]
    raise AssertionError("ops/images.sh recorded no PROMETHEUS_IMAGE")


def promtool(image: str, tests_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{RULES_DIR}:/rules:ro", "-v", f"{tests_dir}:/tests:ro",
         "--entrypoint", "promtool", image, *args],
        capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def test_the_rules_load_and_every_unit_test_passes() -> None:
    image = prometheus_image()
    checked = promtool(image, TESTS_DIR, "check", "rules", "/rules/alerts.yml")
    assert checked.returncode == 0 and "SUCCESS: 18 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool(image, TESTS_DIR, "test", "rules", "/tests/alerts.test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    image = prometheus_image()
    wrong = (TESTS_DIR / "alerts.test.yml").read_text()
    quiet = "      - {eval_time: 5m, alertname: BackupFailing, exp_alerts: []}"
    assert quiet in wrong
    (tmp_path / "alerts.test.yml").write_text(wrong.replace(quiet, quiet.replace("5m", "8m")))  # it fires at 8m
    tmp_path.chmod(0o755)
    tested = promtool(image, tmp_path, "test", "rules", "/tests/alerts.test.yml")
    assert tested.returncode != 0 and "alertname: BackupFailing, time: 8m" in tested.stdout + tested.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)
