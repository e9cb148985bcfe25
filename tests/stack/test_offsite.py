"""Offsite copies (PROFILE=offsite, compose/offsite.yaml): each verified set is copied, encrypted with age, to a
real S3-compatible server the test starts on the stack's network: Moto's standalone server from Debian's
python3-moto (tests/stack/s3/Dockerfile; Debian's rclone has no `serve s3`). The sidecar's transport is Debian's
rclone, its encryption Debian's age. One stack for the module, in this order: the first set (taken at start,
before the server exists) fails its copy loudly while the local set is kept; a set is copied encrypted;
`make verify-offsite` checks it; a wrong key is refused and the copies are unchanged; with the local volume gone
`make restore BACKUP=offsite:latest` restores the copy and `make drill-offsite` drills it; a stopped server fails
the copy while the set is taken."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from devtools.paths import REPO
from tests.fixtures.stack import Stack, StackError, start_stack

pytestmark = pytest.mark.stack

BUCKET = "pgstack-offsite"
S3_DIR = REPO / "tests" / "stack" / "s3"
S3_IMAGE = f"pgstack/s3:moto-{os.environ.get('STACK_VERSION', 'dev')}"
METRICS = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9187/metrics', timeout=5).read().decode())"
# boto3 comes with python3-moto: the test reads the bucket through the server's own S3 API, inside its container
LIST = (
    "import boto3, json; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:9000', region_name='us-east-1', "
    "aws_access_key_id='test', aws_secret_access_key='test'); "
    "objects = s3.list_objects_v2(Bucket='" + BUCKET + "').get('Contents', []); "
    "print(json.dumps({o['Key']: [o['Size'], o['ETag'], s3.get_object(Bucket='" + BUCKET + "', Key=o['Key'])"
    "['Body'].read(64).hex()] for o in objects}))"
)
MAKE_BUCKET = (
    "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:9000/" + BUCKET + "', method='PUT'), timeout=5)"
)


@dataclass
class Offsite:
    stack: Stack
    server: str  # the S3 server's container name
    key: Path  # the age identity whose public key is BACKUP_OFFSITE_RECIPIENTS
    wrong_key: Path  # another identity
    recipient: str

    def bucket(self) -> dict[str, list[object]]:
        """Every object: key -> [size, etag, first 64 bytes in hex]."""
        result = _docker("exec", self.server, "python3", "-c", LIST)
        return dict(json.loads(result.stdout))

    def metrics(self) -> dict[str, float]:
        lines = self.stack.exec("backup", "python", "-c", METRICS).stdout.splitlines()
        return {
            line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("pgbackup_") and " " in line
        }

    def ops(self, script: str, *args: str, key: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / "ops" / script), *args],
            env={**self.stack.env(), "AGE_KEY": str(key)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=900, check=False)
    if check and result.returncode != 0:
        raise StackError(f"docker {' '.join(args[:3])} failed: {result.stderr[-2000:]}")
    return result


def _keypair(directory: Path, name: str) -> tuple[Path, str]:
    """An age identity made by Debian's age-keygen (in the S3 server's image), and its public key."""
    text = _docker("run", "--rm", "--entrypoint", "age-keygen", S3_IMAGE).stdout
    path = directory / name
    path.write_text(text)
    path.chmod(0o600)
    public = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("# public key: "))
    return path, public


@pytest.fixture(scope="module")
def offsite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offsite]:
    directory = tmp_path_factory.mktemp("offsite")
    _docker("build", "--quiet", "--tag", S3_IMAGE, str(S3_DIR))
    key, recipient = _keypair(directory, "key.txt")
    wrong_key, _ = _keypair(directory, "other-key.txt")
    secret_key = directory / "offsite_secret_access_key"
    secret_key.write_text(secrets.token_urlsafe(24) + "\n")
    secret_key.chmod(0o644)  # a test's throwaway credential, read by the sidecar's uid 999 through the bind mount
    env = {
        "BACKUP_OFFSITE_URL": f"s3://{BUCKET}/stack",
        "BACKUP_OFFSITE_ENDPOINT": "http://s3:9000",
        "BACKUP_OFFSITE_ACCESS_KEY_ID": "pgbackup",
        "BACKUP_OFFSITE_RECIPIENTS": recipient,
        "BACKUP_OFFSITE_KEEP": "2",
        "OFFSITE_SECRET_ACCESS_KEY_FILE": str(secret_key),
    }
    with start_stack(profile="offsite", env=env, demo_orders=2000) as stack:
        server = f"{stack.project}-s3"
        _docker(
            "run", "-d", "--name", server, "--network", f"{stack.project}_backend", "--network-alias", "s3", S3_IMAGE
        )
        try:
            wait_for_server(server)
            _docker("exec", server, "python3", "-c", MAKE_BUCKET)
            yield Offsite(stack, server, key, wrong_key, recipient)
        finally:
            _docker("rm", "-f", server, check=False)


def wait_for_server(server: str) -> None:
    probe = "import urllib.request as u; u.urlopen('http://127.0.0.1:9000/', timeout=2)"
    for _ in range(60):
        if _docker("exec", server, "python3", "-c", probe, check=False).returncode == 0:
            return
        _docker("exec", server, "sleep", "1", check=False)  # poll interval inside the container, not a host sleep
    raise StackError(f"the S3 server {server} did not answer: {_docker('logs', server, check=False).stderr[-2000:]}")


def backup_now(offsite: Offsite) -> subprocess.CompletedProcess[str]:
    return offsite.stack.exec("backup", "python", "-m", "pgbackup", "backup", check=False)


def newest_set(offsite: Offsite) -> str:
    listing = offsite.stack.exec("backup", "python", "-m", "pgbackup", "list", "--json").stdout
    return str(json.loads(listing)["sets"][0]["id"])  # newest first


def test_a_copy_that_cannot_reach_the_target_fails_loudly_and_the_local_set_stays(offsite: Offsite) -> None:
    """The set taken at start had no server to go to (it did not exist yet): metric, ERROR log, local set kept."""
    metrics = offsite.metrics()
    assert metrics["pgbackup_offsite_failures_total"] >= 1
    assert metrics["pgbackup_offsite_consecutive_failures"] >= 1
    assert metrics["pgbackup_sets_verified"] >= 1 and metrics["pgbackup_healthy"] == 1
    logs = offsite.stack.compose("logs", "--no-color", "backup").stdout
    assert '"level": "ERROR"' in logs and "offsite copy failed set=" in logs


def test_a_verified_set_is_copied_encrypted_file_by_file(offsite: Offsite) -> None:
    result = backup_now(offsite)
    assert result.returncode == 0, result.stderr
    set_id = newest_set(offsite)
    objects = offsite.bucket()
    names = {key.removeprefix(f"stack/{set_id}/") for key in objects if key.startswith(f"stack/{set_id}/")}
    logs = offsite.stack.compose("logs", "--no-color", "--tail=20", "backup").stdout
    assert {"offsite.json", "manifest.json.age", "globals.sql.age", "db-app.dump.age"} <= names, (names, logs)
    for key, (_, _, head) in objects.items():
        if key.endswith(".age"):
            assert bytes.fromhex(str(head)).startswith(b"age-encryption.org/v1"), key  # ciphertext, not a dump
    metrics = offsite.metrics()
    assert metrics["pgbackup_offsite_copies_total"] >= 1
    assert metrics["pgbackup_offsite_consecutive_failures"] == 0


def test_verify_offsite_decrypts_the_newest_copy_and_checks_every_checksum(offsite: Offsite) -> None:
    result = offsite.ops("verify-offsite.sh", "--set", "latest", key=offsite.key)
    assert result.returncode == 0, result.stderr
    assert "every sha256 matches the manifest" in result.stdout


def test_a_wrong_key_is_refused_clearly_and_the_copies_stay_as_they_were(offsite: Offsite) -> None:
    before = offsite.bucket()
    result = offsite.ops("verify-offsite.sh", "--set", "latest", key=offsite.wrong_key)
    assert result.returncode == 20, result.stderr  # WRONG_KEY
    assert "this key does not decrypt offsite copy" in result.stderr
    assert f"it is not the identity for recipient {offsite.recipient}" in result.stderr
    assert offsite.bucket() == before


def test_restore_from_offsite_after_the_local_volume_is_gone(offsite: Offsite) -> None:
    stack = offsite.stack
    stack.compose("rm", "--stop", "--force", "backup")
    _docker("volume", "rm", f"{stack.project}_backups")
    result = offsite.ops(
        "restore.sh", "--set", "offsite:latest", "--source-db", "app", "--target-db", "app_offsite", key=offsite.key
    )
    assert result.returncode == 0, result.stderr
    assert "fetched offsite copy" in result.stdout and "counts match the manifest" in result.stdout
    with (
        psycopg.connect(stack.dsn("postgres", "app")) as source,
        psycopg.connect(stack.dsn("postgres", "app_offsite")) as copy,
    ):
        query = "SELECT count(*) FROM shop.orders"
        assert copy.execute(query).fetchone() == source.execute(query).fetchone()
    stack.up("backup")  # a new, empty volume: the sidecar takes a set at start (and copies it)


def test_the_drill_restores_an_offsite_copy(offsite: Offsite) -> None:
    """`make drill-offsite`: fetched by the sidecar's image, drilled in the restore-drill container (no network)."""
    result = offsite.ops("drill-offsite.sh", "--set", "offsite:latest", key=offsite.key)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fetched offsite copy" in result.stdout and ": PASSED" in result.stdout, result.stdout
    leftovers = offsite.stack.exec("backup", "ls", "-A", "/backups").stdout.split()
    assert not [name for name in leftovers if name.startswith(".offsite")], leftovers  # the scratch space is gone
    reports = offsite.stack.exec("backup", "ls", "/backups/drills").stdout.split()
    assert any("-offsite-" in name for name in reports), reports


def copies(offsite: Offsite) -> list[str]:
    """The complete copies in the bucket (those with their index), oldest first."""
    return sorted(key.split("/")[1] for key in offsite.bucket() if key.endswith("/offsite.json"))


def test_offsite_retention_keeps_the_newest_copies(offsite: Offsite) -> None:
    """BACKUP_OFFSITE_KEEP=2: a third copy deletes the oldest, all its objects with it."""
    while len(copies(offsite)) < 2:
        assert backup_now(offsite).returncode == 0
    before = copies(offsite)
    assert backup_now(offsite).returncode == 0
    after = copies(offsite)
    assert len(after) == 2 and after[0] == before[-1] and after[-1] not in before, (before, after)
    assert not [key for key in offsite.bucket() if key.split("/")[1] == before[0]]


def test_a_stopped_target_fails_the_copy_while_local_backups_go_on(offsite: Offsite) -> None:
    failures = offsite.metrics()["pgbackup_offsite_failures_total"]
    _docker("stop", offsite.server)
    result = backup_now(offsite)
    assert result.returncode == 0, result.stderr  # the local set is taken and verified
    metrics = offsite.metrics()
    assert metrics["pgbackup_offsite_failures_total"] == failures + 1
    assert metrics["pgbackup_offsite_consecutive_failures"] >= 1
    assert metrics["pgbackup_healthy"] == 1
    # `backup` logs to its own stdout (the exec), one JSON line: the ERROR, with what to do
    failed = [line for line in result.stdout.splitlines() if "offsite copy failed set=" in line]
    assert len(failed) == 1 and json.loads(failed[0])["level"] == "ERROR", result.stdout
    assert "local backups go on meanwhile" in failed[0]
