"""The restore drill, natively against the embedded binaries: it passes on a good set with numbers,
and fails, non-zero, on a corrupted archive, on row counts that do not match, and over its thresholds."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest

from pgbackup.__main__ import main
from pgbackup.errors import ExitCode
from pgbackup.manifest import MANIFEST_NAME
from tests.fast.backup.helpers import EnvFactory, only_set, settings_of


def drill_dirs() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("pgbackup-drill-")}


def run_drill(env: dict[str, str], *args: str) -> tuple[int, dict[str, object]]:
    report = Path(env["BACKUP_DIR"]) / "report.json"
    code = main(["drill", "--report", str(report), *args], environ=env)
    return code, json.loads(report.read_text())


def checks_of(report: dict[str, object]) -> dict[str, bool]:
    return {check["name"]: check["ok"] for check in report["checks"]}  # type: ignore[attr-defined]


def test_drill_passes_with_rto_and_rpo(
    make_env: EnvFactory, set_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = drill_dirs()
    env = make_env(BACKUP_DIR=str(set_copy))
    code, report = run_drill(env)
    assert code == ExitCode.OK
    assert report["passed"] is True and report["verified"] is True
    assert checks_of(report) == {
        "checksums": True,
        "archives list": True,
        "scratch": True,
        "private server": True,
        "globals": True,
        "roles": True,
        "row counts app": True,
        "sanity app": True,
        "row counts postgres": True,
        "sanity postgres": True,
        "RTO": True,
        "RPO": True,
    }
    assert report["databases"][0] == {"name": "app", "tables": 4, "rows": 7700}  # type: ignore[index]
    assert 0 < report["rto_seconds"] < report["max_rto_seconds"]  # type: ignore[operator]
    assert 0 < report["rpo_seconds"]  # type: ignore[operator]
    assert report["set_id"] == only_set(settings_of(env)).id
    out = capsys.readouterr().out
    assert f"restore drill of set {report['set_id']}: PASSED" in out and "RTO " in out and "RPO " in out
    assert drill_dirs() == before, "the private server's directory must be gone"


def test_drill_writes_its_report_under_the_backup_dir_by_default(make_env: EnvFactory, set_copy: Path) -> None:
    assert main(["drill"], environ=make_env(BACKUP_DIR=str(set_copy))) == ExitCode.OK
    [report] = list((set_copy / "drills").glob("*.json"))
    assert json.loads(report.read_text())["passed"] is True
    assert main(["status"], environ=make_env(BACKUP_DIR=str(set_copy))) == ExitCode.OK


def test_drill_fails_on_a_corrupted_archive(
    make_env: EnvFactory, set_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env(BACKUP_DIR=str(set_copy))
    archive = only_set(settings_of(env)).path / "db-app.dump"
    data = bytearray(archive.read_bytes())
    data[len(data) // 3] ^= 0x10
    archive.write_bytes(bytes(data))
    code, report = run_drill(env)
    assert code == ExitCode.VERIFY
    assert report["passed"] is False and checks_of(report) == {"checksums": False}
    assert "FAILED" in capsys.readouterr().out


def test_drill_fails_when_restored_rows_differ_from_the_manifest(make_env: EnvFactory, set_copy: Path) -> None:
    """The count check is not a formality: a manifest claiming one more order fails the drill."""
    env = make_env(BACKUP_DIR=str(set_copy))
    manifest_path = only_set(settings_of(env)).path / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    app = next(database for database in manifest["databases"] if database["name"] == "app")
    orders = next(table for table in app["tables"] if table["table"] == "orders")
    orders["rows"] += 1
    manifest_path.write_text(json.dumps(manifest))
    before = drill_dirs()
    code, report = run_drill(env)
    assert code == ExitCode.VERIFY
    assert checks_of(report)["row counts app"] is False
    failed = next(check for check in report["checks"] if check["name"] == "row counts app")  # type: ignore[attr-defined]
    assert "shop.orders: 2000 rows restored, 2001 in the manifest" in failed["detail"]
    assert drill_dirs() == before


def test_drill_fails_when_a_role_is_missing_from_the_globals(make_env: EnvFactory, set_copy: Path) -> None:
    env = make_env(BACKUP_DIR=str(set_copy))
    backup_set = only_set(settings_of(env))
    manifest_path = backup_set.path / MANIFEST_NAME
    globals_sql = backup_set.path / "globals.sql"
    text = globals_sql.read_text().replace("CREATE ROLE mcp_reader;\n", "")
    text = "\n".join(line for line in text.splitlines() if "mcp_reader" not in line) + "\n"
    globals_sql.write_text(text)
    manifest = json.loads(manifest_path.read_text())
    entry = next(entry for entry in manifest["files"] if entry["name"] == "globals.sql")
    entry["bytes"], entry["sha256"] = len(text.encode()), hashlib.sha256(text.encode()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    code, report = run_drill(env)
    assert code == ExitCode.VERIFY
    assert checks_of(report)["roles"] is False
    failed = next(check for check in report["checks"] if check["name"] == "roles")  # type: ignore[attr-defined]
    assert failed["detail"] == "role mcp_reader missing"


def test_drill_over_its_rpo_limit_exits_with_the_threshold_status(make_env: EnvFactory, set_copy: Path) -> None:
    code, report = run_drill(make_env(BACKUP_DIR=str(set_copy)), "--max-rpo", "1ms")
    assert code == ExitCode.THRESHOLD
    assert report["verified"] is True and report["passed"] is False
    assert checks_of(report)["RPO"] is False and checks_of(report)["RTO"] is True


def test_drill_as_root_needs_an_unprivileged_user(make_env: EnvFactory, set_copy: Path) -> None:
    if os.geteuid() != 0:
        env = make_env(BACKUP_DIR=str(set_copy), BACKUP_DRILL_USER="")
        assert run_drill(env)[0] == ExitCode.OK
        return
    env = make_env(BACKUP_DIR=str(set_copy), BACKUP_DRILL_USER="")
    code, report = run_drill(env)
    assert code == ExitCode.VERIFY
    failed = next(check for check in report["checks"] if check["name"] == "private server")  # type: ignore[attr-defined]
    assert "PostgreSQL refuses to run as root" in failed["detail"]
