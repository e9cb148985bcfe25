"""services/backup/README.md stays true: its settings table is generated from config.SPECS, and it lists
every exit status of errors.ExitCode."""

from __future__ import annotations

import difflib
import re

from devtools.paths import REPO
from pgbackup.commands.settings import render_readme
from pgbackup.errors import ExitCode

README = REPO / "services" / "backup" / "README.md"


def test_settings_table_is_current() -> None:
    text = README.read_text()
    expected = render_readme(text)
    diff = "\n".join(
        difflib.unified_diff(text.splitlines(), expected.splitlines(), "README.md", "generated", lineterm="")
    )
    assert text == expected, (
        "the settings table is out of date: run\n"
        "  PYTHONPATH=services/backup/src .venv/bin/python -m pgbackup settings"
        " --update services/backup/README.md\n" + diff
    )


def test_every_exit_status_is_documented() -> None:
    documented = {int(match) for match in re.findall(r"^\| (\d+) \|", README.read_text(), re.MULTILINE)}
    assert documented == {int(code) for code in ExitCode}
