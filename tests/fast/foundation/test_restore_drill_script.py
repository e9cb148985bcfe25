"""ops/restore-drill.sh (`make restore-drill`) gives the drill a scratch volume of its own and removes it after the
run, whatever the drill's outcome, and when it is stopped: checked with a stand-in `docker` that records its calls."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from devtools.paths import REPO
from tests.helpers import wait_until

SCRIPT = REPO / "ops" / "restore-drill.sh"
FAKE_DOCKER = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$CALLS"
case "$1 $2" in
"compose version") echo 2.40.0 ;;
"compose "*) if [[ -n "${DRILL_HANGS:-}" ]]; then touch "$CALLS.running"; sleep 30; fi; exit 11 ;;
esac
"""


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "COMPOSE_PROJECT_NAME": "pgstack-fake",
        **extra,
    }


def volume_calls(tmp_path: Path) -> list[str]:
    # what else asks docker (its version, the base image's PostgreSQL major for the stack's version) is left out
    return [
        line
        for line in (tmp_path / "calls").read_text().splitlines()
        if not line.startswith(("compose version", "image inspect"))
    ]


def test_the_scratch_volume_is_mounted_for_the_drill_and_removed_after_a_failure(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "--set", "latest"], env=environment(tmp_path), capture_output=True, text=True, check=False
    )
    assert result.returncode == 11, "the drill's own status comes back"
    create, run, remove = volume_calls(tmp_path)
    volume = create.split()[-1]
    assert create == f"volume create --label com.pgstack.drill-scratch=pgstack-fake {volume}"
    assert volume.startswith("pgstack-fake_drill-scratch-")
    assert run.endswith(f"run --rm -T --volume {volume}:/drill-scratch restore-drill drill --set latest")
    assert remove == f"volume rm {volume}"


def test_the_scratch_volume_is_removed_when_the_drill_is_stopped(tmp_path: Path) -> None:
    """As Ctrl-C in a terminal does, the signal reaches the whole process group: compose run stops, then the script."""
    with subprocess.Popen(
        [str(SCRIPT)],
        env=environment(tmp_path, DRILL_HANGS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    ) as process:
        try:
            wait_until(lambda: (tmp_path / "calls.running").exists(), timeout=30, interval=0.1, what="the drill to run")
            os.killpg(process.pid, signal.SIGTERM)
            # the script exits once its EXIT trap has run: the removal is recorded by then
            assert process.wait(timeout=60) == 128 + signal.SIGTERM
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    create, *_, remove = volume_calls(tmp_path)
    assert remove == f"volume rm {create.split()[-1]}"
