"""Offsite copies, without a reachable target: the BACKUP_OFFSITE_* settings (off by default, each bad value
named with what to do), the age encryption each copy goes through (the real `age` and `age-keygen`, on real
files: a round trip gives the same bytes, a wrong key is refused as one, a private key never reaches the
settings), and a backup whose copy fails (nothing listens at the endpoint; the real rclone tries) is kept all
the same. The copy, verify, restore and drill against a real S3 server: tests/stack/test_offsite.py."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtools.net import free_port
from pgbackup import age
from pgbackup.cancel import Cancellation
from pgbackup.clock import SystemClock
from pgbackup.config import Settings
from pgbackup.errors import ConfigError, ToolError, WrongKeyError
from pgbackup.offsite import OffsiteCopy, OffsiteFile, check_key
from pgbackup.runner import BackupRunner
from pgbackup.state import read_state
from tests.fast.backup.helpers import EnvFactory, WebhookReceiver, only_set, settings_of

BASE = {"BACKUP_DIR": "/tmp"}
NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path, str]:
    """Two age identities and their public keys, made by age-keygen."""
    directory = tmp_path_factory.mktemp("keys")
    made = []
    for name in ("key.txt", "other.txt"):
        path = directory / name
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
        made += [path, age.identity_recipient(path)]
    return made[0], made[1], made[2], made[3]  # type: ignore[return-value]


def offsite_env(recipient: str, **extra: str) -> dict[str, str]:
    return {
        **BASE,
        "BACKUP_OFFSITE_URL": "s3://pgstack-backups/site-a",
        "BACKUP_OFFSITE_ENDPOINT": "https://s3.example.com",
        "BACKUP_OFFSITE_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "BACKUP_OFFSITE_SECRET_ACCESS_KEY": "secret",
        "BACKUP_OFFSITE_RECIPIENTS": recipient,
        **extra,
    }


def problems(environ: dict[str, str], *, read_secrets: bool = True) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ, read_secrets=read_secrets)
    return caught.value.problems


def test_offsite_copies_are_off_by_default() -> None:
    settings = Settings.from_env(BASE)
    assert not settings.offsite and settings.offsite_url is None and settings.offsite_keep == 7


def test_a_complete_offsite_configuration_is_read(keys: tuple[Path, str, Path, str]) -> None:
    _, recipient, _, other = keys
    settings = Settings.from_env(offsite_env(f"{recipient}, {other}", BACKUP_OFFSITE_KEEP="3"))
    assert settings.offsite and settings.offsite_url == ("pgstack-backups", "site-a")
    assert settings.offsite_recipients == (recipient, other) and settings.offsite_keep == 3
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("BACKUP_OFFSITE_URL", "https://bucket.example.com/x", "not an s3://bucket[/prefix] URL"),
        ("BACKUP_OFFSITE_URL", "s3://key:secret@bucket/x", "has a query, credentials or a port"),
        ("BACKUP_OFFSITE_URL", "s3://Bad_Bucket/x", "is not an S3 bucket name"),
        ("BACKUP_OFFSITE_ENDPOINT", "s3.example.com", "not an http(s) URL with a host"),
        ("BACKUP_OFFSITE_RECIPIENTS", "age1notakey", "is not an age public key"),
        ("BACKUP_OFFSITE_KEEP", "0", "must be between 1 and 100000"),
    ],
)
def test_each_bad_value_is_named_with_its_reason(
    keys: tuple[Path, str, Path, str], name: str, value: str, reason: str
) -> None:
    found = problems(offsite_env(keys[1], **{name: value}))
    assert any(problem.startswith(f"{name}=") and reason in problem for problem in found), found


def test_a_private_key_given_as_recipient_is_refused_and_never_echoed(keys: tuple[Path, str, Path, str]) -> None:
    private = next(line for line in keys[0].read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    found = problems(offsite_env(private))
    assert found == [
        "BACKUP_OFFSITE_RECIPIENTS=<redacted> is invalid: holds a private key (AGE-SECRET-KEY-...)\n"
        "hint: the sidecar needs only the public key: `age-keygen -y key.txt` prints it; keep key.txt offline"
    ]


def test_an_offsite_url_needs_recipients_and_credentials(keys: tuple[Path, str, Path, str]) -> None:
    environ = offsite_env("", BACKUP_OFFSITE_ACCESS_KEY_ID="", BACKUP_OFFSITE_SECRET_ACCESS_KEY="")
    found = problems(environ)
    assert [problem.split(" is set but ")[1].split(":")[0].split("\n")[0] for problem in found] == [
        "BACKUP_OFFSITE_RECIPIENTS is empty",
        "BACKUP_OFFSITE_ACCESS_KEY_ID is empty",
        "BACKUP_OFFSITE_SECRET_ACCESS_KEY_FILE names no readable, non-empty file",
    ]
    assert "age-keygen -o key.txt" in found[0]
    # a command that never connects (the drill) does not need the secret
    assert len(problems(environ, read_secrets=False)) == 2


def test_the_secret_key_is_read_from_its_file_even_for_commands_that_never_connect(
    tmp_path: Path, keys: tuple[Path, str, Path, str]
) -> None:
    secret = tmp_path / "offsite_secret_access_key"
    secret.write_text("from-the-file\n")
    environ = offsite_env(keys[1], BACKUP_OFFSITE_SECRET_ACCESS_KEY="")
    environ["BACKUP_OFFSITE_SECRET_ACCESS_KEY_FILE"] = str(secret)
    del environ["BACKUP_OFFSITE_SECRET_ACCESS_KEY"]
    assert Settings.from_env(environ, read_secrets=False).offsite_secret_access_key == "from-the-file"


def test_offsite_settings_without_a_url_are_refused() -> None:
    found = problems({**BASE, "BACKUP_OFFSITE_ENDPOINT": "https://s3.example.com"})
    assert found == [
        "BACKUP_OFFSITE_ENDPOINT set without BACKUP_OFFSITE_URL\n"
        "hint: set BACKUP_OFFSITE_URL=s3://bucket/prefix to copy each set offsite, or unset them"
    ]


def test_a_file_round_trips_through_age_streamed_in_chunks(tmp_path: Path, keys: tuple[Path, str, Path, str]) -> None:
    identity, recipient, _, _ = keys
    source = tmp_path / "db-app.dump"
    source.write_bytes(bytes(range(256)) * (3 * age.CHUNK // 256 + 7))  # several chunks and a partial one
    ciphertext: list[bytes] = []
    size, digest = age.encrypt(source, (recipient,), ciphertext.append)
    joined = b"".join(ciphertext)
    assert joined.startswith(age.HEADER) and source.read_bytes()[:64] not in joined
    assert (size, digest) == (len(joined), hashlib.sha256(joined).hexdigest())
    target = tmp_path / "decrypted"
    assert age.decrypt(iter(ciphertext), identity, target, what="db-app.dump") == (size, digest)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_a_wrong_key_is_refused_as_a_wrong_key_and_leaves_no_file(
    tmp_path: Path, keys: tuple[Path, str, Path, str]
) -> None:
    _, recipient, other_identity, _ = keys
    source = tmp_path / "globals.sql"
    source.write_text("CREATE ROLE app_owner;\n")
    ciphertext: list[bytes] = []
    age.encrypt(source, (recipient,), ciphertext.append)
    target = tmp_path / "decrypted"
    with pytest.raises(WrongKeyError, match="no identity matched"):
        age.decrypt(iter(ciphertext), other_identity, target, what="globals.sql")
    assert not target.exists()


def test_a_copy_names_the_recipient_a_wrong_key_is_not_the_identity_for(
    keys: tuple[Path, str, Path, str],
) -> None:
    identity, recipient, other_identity, other = keys
    copy = OffsiteCopy("20261207T040000Z", NOW, NOW, (recipient,), (OffsiteFile("globals.sql", 1, "0" * 64),))
    check_key(copy, identity, url="s3://pgstack-backups/site-a")  # the right key passes
    with pytest.raises(WrongKeyError) as caught:
        check_key(copy, other_identity, url="s3://pgstack-backups/site-a")
    assert caught.value.message == (
        "this key does not decrypt offsite copy 20261207T040000Z in s3://pgstack-backups/site-a: it is not the "
        f"identity for recipient {recipient} (the key given is the identity for {other})"
    )
    assert "the copies were not changed" in caught.value.hints[0]


def test_a_file_that_is_no_age_identity_is_refused(tmp_path: Path) -> None:
    not_a_key = tmp_path / "id_rsa.pub"
    not_a_key.write_text("ssh-ed25519 AAAA... someone@example.com\n")
    with pytest.raises(WrongKeyError, match="unable to read an age identity"):
        age.identity_recipient(not_a_key)


def test_a_failed_offsite_copy_keeps_the_local_set_and_says_so_everywhere(
    make_env: EnvFactory, webhook: WebhookReceiver, keys: tuple[Path, str, Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The target refuses connections (nothing listens on its port): the set is still taken, verified and kept;
    the failure is an ERROR with what to do, in the state (metrics, status) and at the webhook; the secret is in
    none of them."""
    env = make_env(
        BACKUP_OFFSITE_URL="s3://pgstack-offsite/site-a",
        BACKUP_OFFSITE_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        BACKUP_OFFSITE_ACCESS_KEY_ID="pgbackup",
        BACKUP_OFFSITE_SECRET_ACCESS_KEY="s3cr3t-offsite-key",
        BACKUP_OFFSITE_RECIPIENTS=keys[1],
        BACKUP_WEBHOOK_URL=webhook.url,
    )
    settings = settings_of(env)
    with caplog.at_level(logging.INFO, logger="pgbackup"):
        backup_set = BackupRunner(settings, SystemClock(), Cancellation()).run_once()
    assert backup_set.verified and only_set(settings).id == backup_set.id
    state = read_state(settings.state_file)
    assert state is not None and state.last_outcome == "success"
    assert (state.offsite_failures_total, state.offsite_consecutive_failures, state.offsite_copies_total) == (1, 1, 0)
    assert state.offsite_last_error and "unable to upload" in state.offsite_last_error
    [failed] = [record for record in caplog.records if "offsite copy failed" in record.getMessage()]
    assert failed.levelno == logging.ERROR and "local backups go on meanwhile" in failed.getMessage()
    [event] = webhook.events
    assert event["event"] == "offsite_copy_failed" and event["set"] == backup_set.id
    assert event["consecutive_failures"] == 1
    assert "s3cr3t-offsite-key" not in caplog.text + json.dumps(event) + json.dumps(state.to_dict())


def test_an_empty_download_says_the_object_is_missing(tmp_path: Path, keys: tuple[Path, str, Path, str]) -> None:
    with pytest.raises(ToolError, match="no bytes arrived"):
        age.decrypt(iter(()), keys[0], tmp_path / "out", what="db-app.dump")
