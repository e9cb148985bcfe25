"""docs/conventions.md describes what the code does: its exit-status table is both services' `ExitCode`s, its
commands run, and what it says of durations, sizes and unknown variables holds for both services."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import pgbackup.config
import pgmcp.config
from pgbackup.errors import ExitCode as BackupExit
from pgbackup.units import BareNumber, byte_size, seconds
from pgmcp.errors import ExitCode as McpExit
from pgmcp.units import to_bytes, to_milliseconds

REPO = Path(__file__).resolve().parents[3]
CONVENTIONS = REPO / "docs" / "conventions.md"
ROW = re.compile(r"^\| (?P<status>\d+) \| `(?P<name>[A-Z_]+)` \| (?P<users>both|pgbackup) \|", re.MULTILINE)
ROWS = [(int(row["status"]), row["name"], row["users"]) for row in ROW.finditer(CONVENTIONS.read_text())]


def test_the_exit_status_table_is_pgmcps_exit_codes() -> None:
    shared = {(status, name) for status, name, users in ROWS if users == "both"}
    assert shared == {(int(code), code.name) for code in McpExit}


def test_the_exit_status_table_is_pgbackups_exit_codes() -> None:
    assert {(status, name) for status, name, _ in ROWS} == {(int(code), code.name) for code in BackupExit}


def test_each_status_has_one_meaning() -> None:
    statuses = [status for status, _, _ in ROWS]
    assert len(statuses) == len(set(statuses)), statuses


def test_the_regeneration_commands_run_and_change_nothing(tmp_path: Path) -> None:
    """The page's bash block, run in a copy of the files it rewrites: they are current, so nothing changes."""
    [block] = re.findall(r"```bash\n(.*?)```", CONVENTIONS.read_text(), re.DOTALL)
    files = ("services/mcp/README.md", "services/backup/README.md", "compose/compose.yaml", "compose/stack.yaml")
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    for link in ("services/mcp/src", "services/backup/src", ".venv"):
        (tmp_path / link).symlink_to(REPO / link)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in files:
        assert (tmp_path / name).read_text() == (REPO / name).read_text(), f"{name} is stale"


@pytest.mark.parametrize(("text", "milliseconds"), [("250ms", 250), ("5s", 5000), ("1.5s", 1500), ("2m", 120_000)])
def test_both_services_read_a_duration_alike(text: str, milliseconds: int) -> None:
    assert to_milliseconds(text) == milliseconds
    assert seconds(text) * 1000 == pytest.approx(milliseconds)


@pytest.mark.parametrize("text", ["5000", "30"])
def test_both_services_refuse_a_bare_number_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match=rf"\nhint: write {text}ms or {text}s"):
        to_milliseconds(text)
    with pytest.raises(BareNumber, match=rf"\nhint: write {text}s \(seconds\) or {text}ms"):
        seconds(text)


@pytest.mark.parametrize(("text", "size"), [("4096", 4096), ("256KiB", 262_144), ("100MiB", 104_857_600)])
def test_both_services_read_a_size_alike(text: str, size: int) -> None:
    assert to_bytes(text) == byte_size(text) == size


@pytest.mark.parametrize("text", ["256KB", "1M"])
def test_both_services_refuse_si_units(text: str) -> None:
    for parse in (to_bytes, byte_size):
        with pytest.raises(ValueError, match=r"not a size in IEC units\nhint: write [KM]iB"):
            parse(text)


def test_both_services_stop_on_a_misspelt_variable_with_the_nearest_name() -> None:
    assert pgmcp.config.unknown_variables({"MCP_MAX_ROW": "1"}) == [
        "MCP_MAX_ROW is not a setting of pgmcp\nhint: did you mean MCP_MAX_ROWS?"
    ]
    assert pgbackup.config.unknown_variables({"BACKUP_KEEP_LAS": "1"}) == [
        "BACKUP_KEEP_LAS is not a setting of pgbackup\nhint: did you mean BACKUP_KEEP_LAST?"
    ]
