"""The API key file (`pgmcp.keys`): hashed entries with scopes and expiry, revocation with its reason, and
the store's reload (a changed file is picked up; a broken one leaves the loaded keys in force)."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgmcp import keys

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PLAIN = "default:" + "a" * 32 + "\n"


def test_a_created_key_is_stored_only_as_its_digest_and_identified(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(PLAIN)
    secret = keys.create(path, "alice", tools=frozenset({"query"}), max_rows=50, expires=NOW + timedelta(days=1),
                         now=NOW)  # fmt: skip
    assert secret.startswith(keys.KEY_PREFIX) and len(secret) == len(keys.KEY_PREFIX) + 43
    text = path.read_text()
    assert secret not in text and keys.digest(secret) in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    found = keys.identify(keys.parse_entries(text), secret, NOW)
    assert found.refusal is None and found.entry is not None
    assert (found.entry.name, found.entry.tools, found.entry.max_rows) == ("alice", frozenset({"query"}), 50)
    assert found.entry.identity().allows("query") and not found.entry.identity().allows("explain")
    assert keys.identify(keys.parse_entries(text), "a" * 32, NOW).entry.name == "default"  # type: ignore[union-attr]
    assert keys.identify(keys.parse_entries(text), secret + "x", NOW) == keys.Identified(None, "unknown API key")


def test_an_expired_or_revoked_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(PLAIN)
    secret = keys.create(path, "bob", tools=None, max_rows=None, expires=NOW + timedelta(hours=1), now=NOW)
    later = keys.identify(keys.parse_entries(path.read_text()), secret, NOW + timedelta(hours=1))
    assert later.refusal == "API key 'bob' expired at 2026-12-06T13:00:00Z"
    keys.revoke(path, "bob", now=NOW + timedelta(minutes=5))
    revoked = keys.identify(keys.parse_entries(path.read_text()), secret, NOW)
    assert revoked.refusal == "API key 'bob' was revoked at 2026-12-06T12:05:00Z"
    with pytest.raises(ValueError, match="already revoked"):
        keys.revoke(path, "bob", now=NOW)
    with pytest.raises(ValueError, match="no key named 'carol'"):
        keys.revoke(path, "carol", now=NOW)
    assert path.read_text().startswith(PLAIN)  # the other lines are left as they were


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("x:sha256:" + "0" * 64 + " max_rows=0", "max_rows='0' is not a whole number"),
        ("x:sha256:" + "0" * 64 + " tools=drop", "unknown tool drop"),
        ("x:sha256:" + "0" * 64 + " expires=soon", "expires='soon' is not an ISO-8601"),
        ("x:sha256:" + "0" * 64 + " colour=red", "'colour=red' is not one of"),
        ("x:short", "shorter than 16 characters"),
        ("bad name:" + "a" * 20, "key name 'bad name' must be 1-64 letters"),
        ("x:sha256:" + "0" * 63, "the digest is not 64 lowercase hex digits"),
        ("x", "an entry is not `name:key` or `name:sha256:<digest>`"),
        ("x:" + "a" * 20 + " tools=query", "a plain `name:key` entry takes no attributes"),
    ],
)
def test_every_bad_line_is_named_without_its_key(line: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        keys.parse_entries(line, frozenset({"query", "explain"}))
    assert problem in str(caught.value) and "line 1" in str(caught.value)
    assert "a" * 20 not in str(caught.value)


def test_the_store_reloads_a_changed_file_and_keeps_its_keys_when_the_new_one_is_broken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys"
    path.write_text(PLAIN)
    clock = [0.0]
    store = keys.KeyStore(path=path, clock=lambda: clock[0])
    secret = keys.create(path, "carol", tools=None, max_rows=None, expires=None, now=NOW)
    clock[0] = 0.5
    assert store.identify(secret, NOW).entry is None  # checked at most every RELOAD_CHECK_S
    clock[0] = 100.0
    assert store.refresh() is True and store.identify(secret, NOW).refusal is None
    clock[0] = 100.5
    assert store.refresh() is False
    inode = path.stat().st_ino
    with caplog.at_level(logging.ERROR, logger="pgmcp.keys"):
        path.write_text("")  # a half-written file, as a reader could see it
        os.utime(path, ns=(1, 1))
        clock[0] = 200.0
        assert store.refresh() is False
    assert [entry.name for entry in store.entries] == ["default", "carol"]
    assert "holds no key" in caplog.text and path.stat().st_ino == inode
