"""The drill history from real drill reports: `drills` lists them newest first with verdict, RTO, RPO and scratch,
renders the latest with its RTO/RPO trend as Markdown and HTML, skips a damaged report with a warning, and the
drill keeps only the newest reports."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgbackup.__main__ import main
from pgbackup.drills import prune_reports, read_history, render_html, render_markdown, render_table, sparkline
from pgbackup.errors import ExitCode
from tests.fast.backup.helpers import EnvFactory


@pytest.fixture
def history(make_env: EnvFactory, set_copy: Path) -> Iterator[dict[str, str]]:
    """Three real drills of one set: in memory, on disk, and one over an RTO limit of 1ms."""
    disk = Path(tempfile.mkdtemp(prefix="pgbackup-test-scratch-", dir="/tmp"))
    disk.chmod(0o777)
    env = make_env(BACKUP_DIR=str(set_copy), BACKUP_DRILL_DISK_DIR=str(disk))
    assert main(["drill"], environ=env) == ExitCode.OK
    assert main(["drill"], environ={**env, "BACKUP_DRILL_SCRATCH": "disk"}) == ExitCode.OK
    assert main(["drill", "--max-rto", "1ms"], environ=env) == ExitCode.THRESHOLD
    yield env
    shutil.rmtree(disk, ignore_errors=True)


def test_the_history_lists_every_drill_newest_first_and_renders_html(
    history: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["drills"], environ=history) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["STARTED", "SET", "VERDICT", "RTO", "RPO", "SCRATCH", "BY"]
    rows = [line for line in lines[1:] if line[:1].isdigit()]
    assert [" over limit " in rows[0], " passed " in rows[1], " passed " in rows[2]] == [True, True, True]
    assert [row.split()[-2:] for row in rows] == [["memory", "hand"], ["disk", "hand"], ["memory", "hand"]]
    assert lines[2].split()[0] == "RTO:", "an over-limit drill names the check it failed, below its line"
    assert main(["drills", "--format", "html"], environ=history) == ExitCode.OK
    page = capsys.readouterr().out
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") == 2 and page.count("<polyline") == 2 and "stroke-dasharray" in page


def test_markdown_shows_the_latest_drill_and_the_trend_and_skips_a_damaged_report(
    history: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    drills = Path(history["BACKUP_DIR"]) / "drills"
    (drills / "20990101T000000Z-broken.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="pgbackup.drills"):
        entries = read_history(drills)
    assert len(entries) == 3
    assert "unable to read the drill report" in caplog.text and "broken" in caplog.text
    markdown = render_markdown(entries)
    latest = entries[-1]
    assert f"## Latest: set {latest.set_id}, OVER LIMIT" in markdown
    assert "| scratch | memory (" in markdown and "memory budget 4.0 GiB" in markdown
    assert "| RTO | FAILED |" in markdown
    assert "## Trend: the last 3 drills, oldest first" in markdown
    trend = [line for line in markdown.splitlines() if line.startswith(f"| {entries[0].started_at[:4]}")]
    assert [line.split("|")[6].strip() for line in trend] == ["memory", "disk", "memory"]
    assert markdown.count("- RTO `") == 1 and markdown.count("- RPO `") == 1


def test_only_the_newest_reports_are_kept(tmp_path: Path) -> None:
    for day in range(1, 6):
        (tmp_path / f"202601{day:02d}T000000Z-set.json").write_text(json.dumps({}))
    removed = prune_reports(tmp_path, keep=3)
    assert [path.name[:8] for path in removed] == ["20260101", "20260102"]
    assert sorted(path.name[:8] for path in tmp_path.iterdir()) == ["20260103", "20260104", "20260105"]


def test_no_reports_yet_says_how_to_make_one() -> None:
    assert "make restore-drill" in render_table([])
    assert "make restore-drill" in render_markdown([]) and "make restore-drill" in render_html([])


@pytest.mark.parametrize(
    ("values", "line"),
    [([1.0, 2.0, 3.0], "▁▅█"), ([5.0, 5.0], "▁▁"), ([None, 1.0, None, 8.0], "·▁·█"), ([None], "·")],
)
def test_sparkline(values: list[float | None], line: str) -> None:
    assert sparkline(values) == line
