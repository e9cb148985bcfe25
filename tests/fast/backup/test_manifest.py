"""A set's records on disk, pinned exactly: the manifest of a real set reads back to what was written, field for
field (what a restore rebuilds roles, grants and settings from), and the verification record keeps its history,
its flat latest verdict for format-1 readers, and its limit. `make mutate` holds these to account."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgbackup.catalog import scan
from pgbackup.errors import VerificationError
from pgbackup.manifest import (
    FORMAT,
    HISTORY_LIMIT,
    MANIFEST_NAME,
    VERIFICATION_FORMAT,
    VERIFICATION_NAME,
    DatabaseSetting,
    Manifest,
    Verdict,
    Verification,
)

AT = datetime(2026, 12, 4, 12, 0, 5, tzinfo=UTC)


def set_path(backups: Path) -> Path:
    (backup_set,) = scan(backups / "sets").sets
    return backup_set.path


def test_a_real_manifest_reads_back_field_for_field(shared_set_dir: Path) -> None:
    raw = json.loads((set_path(shared_set_dir) / MANIFEST_NAME).read_text())
    manifest = Manifest.from_dict(raw)
    assert json.loads(json.dumps(manifest.to_dict())) == raw  # as written to disk (tuples become lists)
    assert Manifest.read(set_path(shared_set_dir)) == manifest
    # the set has what the round trip must carry: without these the equality above proves less
    app = manifest.database("app")
    assert app.acl and app.tables and app.objects and app.name == "app" and app.file == "db-app.dump"
    assert any(role.settings for role in manifest.roles) and any(role.member_of for role in manifest.roles)
    assert raw["format"] == FORMAT and raw["bytes"] == sum(entry["bytes"] for entry in raw["files"])
    assert raw["duration_seconds"] == round((manifest.finished_at - manifest.started_at).total_seconds(), 3)


def test_optional_fields_keep_their_values_and_defaults(shared_set_dir: Path) -> None:
    raw = json.loads((set_path(shared_set_dir) / MANIFEST_NAME).read_text())
    database = raw["databases"][0]
    database.update(acl=None, locale="und", icu_rules="&a < b", settings=[])
    raw["bootstrap_superuser"], raw["role_passwords"] = "admin", True
    manifest = Manifest.from_dict(raw)
    first = manifest.databases[0]
    assert (first.acl, first.locale, first.icu_rules, first.settings) == (None, "und", "&a < b", ())
    assert (manifest.bootstrap_superuser, manifest.role_passwords) == ("admin", True)
    for key in ("bootstrap_superuser", "role_passwords"):
        del raw[key]
    for key in ("locale", "icu_rules", "acl", "settings", "objects"):
        del database[key]
    defaults = Manifest.from_dict(raw)
    first = defaults.databases[0]
    assert (defaults.bootstrap_superuser, defaults.role_passwords) == ("postgres", False)
    assert (first.acl, first.locale, first.icu_rules, first.settings, first.objects) == (None, None, None, (), {})
    role = dict(raw["roles"][0])
    role.pop("settings", None), role.pop("member_of", None)
    raw["roles"] = [role]
    (bare,) = Manifest.from_dict(raw).roles
    assert (bare.settings, bare.member_of) == ((), ())


def test_a_manifest_of_another_format_or_damaged_is_refused_with_what_to_do(set_copy: Path) -> None:
    path = set_path(set_copy)
    raw = json.loads((path / MANIFEST_NAME).read_text())
    with pytest.raises(ValueError, match=r"manifest format 2 is not 1: use a pgbackup that wrote it"):
        Manifest.from_dict({**raw, "format": 2})
    (path / MANIFEST_NAME).write_text(json.dumps({**raw, "format": 2}))
    with pytest.raises(VerificationError) as damaged:
        Manifest.read(path)
    assert f"unable to read the manifest {path / MANIFEST_NAME}: manifest format 2" in str(damaged.value)
    assert damaged.value.hints == (
        "the set is damaged: verify the others with `python -m pgbackup verify` and use an older set",
    )
    (path / MANIFEST_NAME).write_text(json.dumps({key: value for key, value in raw.items() if key != "files"}))
    with pytest.raises(VerificationError, match="unable to read the manifest .*'files'"):
        Manifest.read(path)


def test_a_database_is_found_by_its_name(shared_set_dir: Path) -> None:
    manifest = Manifest.read(set_path(shared_set_dir))
    assert [manifest.database(name).name for name in ("app", "postgres")] == ["app", "postgres"]
    with pytest.raises(KeyError) as missing:
        manifest.database("nope")
    assert missing.value.args == ("nope",)


def test_database_settings_are_read_from_the_manifest(shared_set_dir: Path) -> None:
    """ALTER DATABASE ... SET and ALTER ROLE ... IN DATABASE ... SET, as the manifest keeps them (the session set
    has none of its own)."""
    raw = json.loads((set_path(shared_set_dir) / MANIFEST_NAME).read_text())
    settings = [{"role": None, "setting": "work_mem=64MB"}, {"role": "app_owner", "setting": "search_path=shop"}]
    raw["databases"] = [{**database, "settings": settings} if database["name"] == "app" else database
                        for database in raw["databases"]]  # fmt: skip
    manifest = Manifest.from_dict(raw)
    assert manifest.database("app").settings == (
        DatabaseSetting(None, "work_mem=64MB"),
        DatabaseSetting("app_owner", "search_path=shop"),
    )
    assert manifest.database("postgres").settings == ()
    assert json.loads(json.dumps(manifest.to_dict())) == raw


def test_a_check_of_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError) as unknown:
        Verdict.from_dict({"kind": "rumour", "ok": True, "at": "2026-12-04T12:00:05.000000Z"})
    assert str(unknown.value) == "unknown check kind 'rumour'"


def verdict(kind: str, ok: bool, minutes: int = 0, error: str | None = None) -> Verdict:
    return Verdict(kind, ok, AT + timedelta(minutes=minutes), ("checksums", "pg_restore --list"), error)


def test_the_record_keeps_every_check_and_the_latest_decides(tmp_path: Path) -> None:
    first = Verification.record(tmp_path, verdict("backup", True))
    assert first.history == (verdict("backup", True),)
    failed = verdict("scrub", False, 1, "db-app.dump: missing")
    second = Verification.record(tmp_path, failed)
    assert second.history == (verdict("backup", True), failed)
    assert (second.ok, second.verified_at, second.error, second.latest) == (False, failed.at, failed.error, failed)
    assert Verification.read(tmp_path) == second
    raw = json.loads((tmp_path / VERIFICATION_NAME).read_text())
    assert raw == {
        "format": VERIFICATION_FORMAT,
        "ok": False,
        "verified_at": "2026-12-04T12:01:05.000000Z",
        "checks": ["checksums", "pg_restore --list"],
        "error": "db-app.dump: missing",
        "history": [
            {"kind": "backup", "ok": True, "at": "2026-12-04T12:00:05.000000Z",
             "checks": ["checksums", "pg_restore --list"], "error": None},
            {"kind": "scrub", "ok": False, "at": "2026-12-04T12:01:05.000000Z",
             "checks": ["checksums", "pg_restore --list"], "error": "db-app.dump: missing"},
        ],
    }  # fmt: skip


def test_the_history_keeps_the_backups_own_check_and_the_newest(tmp_path: Path) -> None:
    record = Verification((verdict("backup", True),))
    for minute in range(1, HISTORY_LIMIT + 5):
        record = record.with_verdict(verdict("scrub", True, minute))
    assert len(record.history) == HISTORY_LIMIT
    assert record.history[0] == verdict("backup", True)
    assert record.history[1] == verdict("scrub", True, 6)
    assert record.latest == verdict("scrub", True, HISTORY_LIMIT + 4)
    exactly = Verification((verdict("backup", True),))
    for minute in range(1, HISTORY_LIMIT):
        exactly = exactly.with_verdict(verdict("scrub", True, minute))
    assert len(exactly.history) == HISTORY_LIMIT and exactly.history[1] == verdict("scrub", True, 1)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"ok": True, "verified_at": "2026-12-04T12:00:05.000000Z", "checks": ["checksums"], "error": None},
         (Verdict("backup", True, AT, ("checksums",), None),)),
        ({"format": 1, "ok": False, "verified_at": "2026-12-04T12:00:05.000000Z", "error": "x: missing"},
         (Verdict("backup", False, AT, (), "x: missing"),)),
        ({"format": 3, "history": []}, None),
        ({"format": 2, "history": []}, None),
        ({"format": 2, "history": [{"kind": "backup", "ok": True, "at": "2026-12-04T12:00:05.000000Z"}]},
         (Verdict("backup", True, AT, (), None),)),
        ({"format": 2, "history": [{"kind": "rumour", "ok": True, "at": "2026-12-04T12:00:05.000000Z"}]}, None),
        ("not json", None),
    ],
    ids=["format-1", "format-1-explicit", "unknown-format", "empty-history", "defaults", "unknown-kind", "garbage"],
)  # fmt: skip
def test_old_unknown_and_damaged_records_read_as_what_they_are(
    tmp_path: Path, content: object, expected: tuple[Verdict, ...] | None
) -> None:
    path = tmp_path / VERIFICATION_NAME
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    record = Verification.read(tmp_path)
    assert (None if record is None else record.history) == expected


def test_a_verdict_describes_itself_in_one_line() -> None:
    assert verdict("scrub", True).describe() == "scrub at 2026-12-04T12:00:05.000000Z"
    assert verdict("drill", False, 0, "db-app.dump: missing").describe() == (
        "drill at 2026-12-04T12:00:05.000000Z: db-app.dump: missing"
    )
