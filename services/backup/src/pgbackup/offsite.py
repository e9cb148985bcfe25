"""Offsite copies of verified sets: copy, list, prune and fetch them on S3-compatible storage (BACKUP_OFFSITE_URL).

Transport is Debian's `rclone` (its `:s3:` backend, configured through RCLONE_S3_* variables of the child
only: the secret key never goes on a command line); encryption is `age` (pgbackup.age), file by file, on the
way out. Layout under `s3://bucket/prefix/`:

  <id>/<name>.age     each file of the set (archives, globals.sql, manifest.json), encrypted to the recipients
  <id>/offsite.json   the copy's index, plain JSON, written last: which objects, their sizes and the SHA-256 of
                      their ciphertext, the recipients; a directory without it is an incomplete copy

A fetch checks each object against the index (what the transport delivered), decrypts it, then checks every
file against the set's own manifest (its SHA-256 after decryption) and lists the archives, as `verify` does.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pgbackup import age
from pgbackup.cancel import Cancellation
from pgbackup.catalog import LATEST, SET_ID, BackupSet
from pgbackup.clock import Clock, from_iso, to_iso
from pgbackup.config import Settings
from pgbackup.errors import OffsiteError, SetNotFoundError, ToolError, VerificationError, WrongKeyError
from pgbackup.manifest import MANIFEST_NAME, Manifest, Verdict, Verification
from pgbackup.verify import verify_set

logger = logging.getLogger(__name__)

INDEX_NAME = "offsite.json"
INDEX_FORMAT = 1
SUFFIX = ".age"
PREFIX = "offsite:"
"""How `restore --set` names an offsite copy: `offsite:<id>` or `offsite:latest`."""
# Fail within seconds when the target is down (the copy is retried at the next backup, not now), and keep
# rclone's own log to errors: its messages become ours.
RCLONE_FLAGS = ("--retries=2", "--low-level-retries=3", "--contimeout=5s", "--timeout=60s", "--log-level=ERROR")
STDERR_TAIL = 1500
TARGET_HINT = (
    "check that the offsite target answers from the backup container (BACKUP_OFFSITE_ENDPOINT, the bucket of "
    "BACKUP_OFFSITE_URL) and that the credentials may write there; local backups go on meanwhile"
)


@dataclass(frozen=True, slots=True)
class OffsiteFile:
    """One object of a copy: the set's file `name`, stored encrypted as `<name>.age` (`bytes`, `sha256` of it)."""

    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class OffsiteCopy:
    """A complete copy, as its index describes it."""

    id: str
    copied_at: datetime
    snapshot_at: datetime
    recipients: tuple[str, ...]
    files: tuple[OffsiteFile, ...]

    @property
    def bytes(self) -> int:
        return sum(item.bytes for item in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "id": self.id,
            "copied_at": to_iso(self.copied_at),
            "snapshot_at": to_iso(self.snapshot_at),
            "recipients": list(self.recipients),
            "files": [asdict(item) for item in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OffsiteCopy:
        if data.get("format") != INDEX_FORMAT:
            raise ValueError(f"index format {data.get('format')!r}, this pgbackup reads {INDEX_FORMAT}")
        return cls(
            id=str(data["id"]),
            copied_at=from_iso(data["copied_at"]),
            snapshot_at=from_iso(data["snapshot_at"]),
            recipients=tuple(data["recipients"]),
            files=tuple(
                OffsiteFile(str(item["name"]), int(item["bytes"]), str(item["sha256"])) for item in data["files"]
            ),
        )


class Remote:
    """`s3://bucket/prefix` through rclone; every failure is an OffsiteError naming what was attempted."""

    def __init__(self, settings: Settings) -> None:
        if settings.offsite_url is None:
            raise OffsiteError(
                "unable to reach an offsite copy: BACKUP_OFFSITE_URL is not set",
                "set BACKUP_OFFSITE_URL, BACKUP_OFFSITE_RECIPIENTS and the credentials (docs/operations.md, Offsite "
                "copies), and start the stack with PROFILE=offsite",
            )
        bucket, prefix = settings.offsite_url
        self.root = "/".join(part for part in (bucket, prefix) if part)
        self.url = f"s3://{self.root}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tempfile.gettempdir(),
            "RCLONE_CONFIG": os.path.join(tempfile.gettempdir(), "pgbackup-rclone-none.conf"),  # none: all from env
            "RCLONE_CACHE_DIR": os.path.join(tempfile.gettempdir(), "pgbackup-rclone-cache"),
            "RCLONE_S3_PROVIDER": "Other" if settings.offsite_endpoint else "AWS",
            "RCLONE_S3_ENV_AUTH": "false",
            "RCLONE_S3_ACCESS_KEY_ID": settings.offsite_access_key_id,
            "RCLONE_S3_SECRET_ACCESS_KEY": settings.offsite_secret_access_key or "",
            "RCLONE_S3_NO_CHECK_BUCKET": "true",  # the bucket is the operator's: never created or probed
        }
        if settings.offsite_endpoint:
            self.env["RCLONE_S3_ENDPOINT"] = settings.offsite_endpoint
            self.env["RCLONE_S3_FORCE_PATH_STYLE"] = "true"
        if settings.offsite_region:
            self.env["RCLONE_S3_REGION"] = settings.offsite_region
        self._rclone = shutil.which("rclone")
        if self._rclone is None:
            raise ToolError("unable to find rclone in PATH", "the backup image installs Debian's rclone package")

    def path(self, *parts: str) -> str:
        return ":s3:" + "/".join((self.root, *parts))

    def _argv(self, *args: str) -> list[str]:
        assert self._rclone is not None  # checked in __init__
        return [self._rclone, *args, *RCLONE_FLAGS]

    def _failed(self, what: str, stderr: str) -> OffsiteError:
        return OffsiteError(f"unable to {what} in {self.url}: {_tail(stderr)}", TARGET_HINT)

    def run(self, what: str, *args: str, data: bytes | None = None) -> bytes:
        result = subprocess.run(
            self._argv(*args), input=data, capture_output=True, env=self.env, check=False, timeout=600
        )
        if result.returncode != 0:
            raise self._failed(what, result.stderr.decode(errors="replace"))
        return result.stdout

    def upload(self, name: str, produce: Callable[[Callable[[bytes], object]], Any], *, what: str) -> Any:
        """Stream what `produce(sink)` hands to `sink` into the object `name`; produce's result."""
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                self._argv("rcat", self.path(name)),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=self.env,
            )
            assert process.stdin is not None  # stdin=PIPE
            stdin: IO[bytes] = process.stdin
            try:
                result = produce(stdin.write)
                stdin.close()
            except BrokenPipeError:
                result = None  # rclone gave up: its status and message say why
            except BaseException:
                process.kill()
                process.wait()
                raise
            status = process.wait()
            if status != 0 or result is None:
                errors.seek(0)
                raise self._failed(what, errors.read().decode(errors="replace") or f"rclone exited {status}")
        return result

    def download(self, name: str, *, what: str) -> Iterator[bytes]:
        """The object `name`, chunk by chunk; OffsiteError at the end when rclone failed."""
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                self._argv("cat", self.path(name)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=self.env,
            )
            assert process.stdout is not None  # stdout=PIPE
            try:
                yield from iter(lambda: process.stdout.read(age.CHUNK), b"")  # type: ignore[union-attr]
            finally:
                process.stdout.close()
                if process.poll() is None:
                    process.kill()
                status = process.wait()
            if status != 0:
                errors.seek(0)
                raise self._failed(what, errors.read().decode(errors="replace"))

    def directories(self) -> list[str]:
        """The copy directories (complete or not), oldest first (ids sort by time)."""
        try:
            listing = self.run("list the offsite copies", "lsf", "--dirs-only", self.path()).decode()
        except OffsiteError as exc:
            if "directory not found" in exc.message:
                return []  # an empty prefix: no copy yet
            raise
        return sorted(name.rstrip("/") for name in listing.splitlines() if SET_ID.match(name.rstrip("/")))

    def complete(self) -> list[str]:
        """The ids of complete copies (their index is there), oldest first."""
        try:
            listing = self.run(
                "list the offsite copies",
                "lsf",
                "--recursive",
                "--max-depth=2",
                "--files-only",
                f"--include=/*/{INDEX_NAME}",
                self.path(),
            ).decode()
        except OffsiteError as exc:
            if "directory not found" in exc.message:
                return []
            raise
        ids = (line.split("/", 1)[0] for line in listing.splitlines() if line.endswith(f"/{INDEX_NAME}"))
        return sorted(name for name in ids if SET_ID.match(name))

    def index(self, set_id: str) -> OffsiteCopy:
        data = b"".join(self.download(f"{set_id}/{INDEX_NAME}", what=f"read the index of copy {set_id}"))
        try:
            return OffsiteCopy.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError) as exc:
            raise OffsiteError(
                f"unable to read the index of offsite copy {set_id} in {self.url}: {exc}",
                "the copy is damaged or incomplete: use another (`offsite:<id>`), a later backup copies a new one",
            ) from exc

    def purge(self, set_id: str) -> None:
        self.run(f"delete offsite copy {set_id}", "purge", self.path(set_id))


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if "NOTICE: Config file" not in line]
    return " ".join(lines)[-STDERR_TAIL:] or "rclone failed without a message"


def copy_set(settings: Settings, backup_set: BackupSet, *, clock: Clock) -> OffsiteCopy:
    """Encrypt and upload every file of a verified set, then its index (which makes the copy complete)."""
    remote = Remote(settings)
    names = [*(entry.name for entry in backup_set.manifest.files), MANIFEST_NAME]
    files = []
    for name in names:
        source = backup_set.path / name

        def produce(sink: Callable[[bytes], object], source: Path = source) -> tuple[int, str]:
            return age.encrypt(source, settings.offsite_recipients, sink)

        size, digest = remote.upload(f"{backup_set.id}/{name}{SUFFIX}", produce, what=f"upload {name}")
        files.append(OffsiteFile(name, size, digest))
    copy = OffsiteCopy(backup_set.id, clock.now(), backup_set.snapshot_at, settings.offsite_recipients, tuple(files))
    index = json.dumps(copy.to_dict(), indent=2).encode()
    remote.run(f"write the index of copy {backup_set.id}", "rcat", remote.path(backup_set.id, INDEX_NAME), data=index)
    logger.info("offsite copy finished set=%s files=%d bytes=%d target=%s", copy.id, len(files), copy.bytes, remote.url)
    return copy


def prune_copies(settings: Settings, *, keep_also: str) -> list[str]:
    """Delete copies past BACKUP_OFFSITE_KEEP (oldest first) and incomplete ones older than the newest complete
    copy (an interrupted upload); `keep_also` (the copy just made) and the newest complete copy always stay."""
    remote = Remote(settings)
    complete = remote.complete()
    kept = set(complete[-settings.offsite_keep :]) | {keep_also}
    newest = complete[-1] if complete else None
    deleted = []
    for set_id in remote.directories():
        incomplete_leftover = set_id not in complete and newest is not None and set_id < newest
        if set_id in kept or (set_id not in complete and not incomplete_leftover):
            continue
        remote.purge(set_id)
        deleted.append(set_id)
    if deleted:
        logger.info("offsite retention deleted copies=%s kept=%d", ",".join(deleted), len(kept & set(complete)))
    return deleted


def resolve(remote: Remote, selector: str) -> OffsiteCopy:
    """The copy named `selector` (an id, or `latest` for the newest complete one)."""
    complete = remote.complete()
    if selector == LATEST:
        if not complete:
            raise SetNotFoundError(
                f"unable to pick the latest offsite copy: {remote.url} holds no complete copy",
                "a verified backup copies one (make backup-now) when BACKUP_OFFSITE_URL is set",
            )
        return remote.index(complete[-1])
    if selector not in complete:
        known = ", ".join(complete[-5:]) or "none"
        raise SetNotFoundError(
            f"unable to find offsite copy {selector!r} in {remote.url}: no complete copy has that id",
            f"the newest complete copies are: {known}",
        )
    return remote.index(selector)


def check_key(copy: OffsiteCopy, identity: Path, *, url: str) -> None:
    """Refuse an identity that is not one of the copy's recipients before anything is downloaded."""
    recipient = age.identity_recipient(identity)
    if recipient not in copy.recipients:
        raise WrongKeyError(
            f"this key does not decrypt offsite copy {copy.id} in {url}: it is not the identity for recipient "
            f"{', '.join(copy.recipients)} (the key given is the identity for {recipient})",
            "give AGE_KEY the private key whose public key is in BACKUP_OFFSITE_RECIPIENTS when the copy was made; "
            "the copies were not changed",
        )


def fetch_copy(
    settings: Settings, selector: str, identity: Path, sets_dir: Path, *, clock: Clock, cancel: Cancellation
) -> BackupSet:
    """Download, decrypt and verify an offsite copy into `sets_dir/<id>` (a set like any local one, with the
    verdict recorded); nothing is left behind on failure, and the offsite copy is only read."""
    remote = Remote(settings)
    copy = resolve(remote, selector)
    check_key(copy, identity, url=remote.url)
    final = sets_dir / copy.id
    if final.exists():
        raise OffsiteError(
            f"unable to fetch offsite copy {copy.id} into {sets_dir}: a set with that id is already there",
            "use the local set, or fetch into an empty directory",
        )
    partial = sets_dir / f"{copy.id}.partial"
    sets_dir.mkdir(parents=True, exist_ok=True)
    partial.mkdir()
    try:
        for item in copy.files:
            cancel.check()
            chunks = remote.download(f"{copy.id}/{item.name}{SUFFIX}", what=f"download {item.name}")
            size, digest = age.decrypt(
                chunks, identity, partial / item.name, what=f"{item.name} of offsite copy {copy.id}"
            )
            if (size, digest) != (item.bytes, item.sha256):
                raise VerificationError(
                    f"offsite copy {copy.id}: {item.name}{SUFFIX} is {size} bytes with sha256 {digest}, its index "
                    f"says {item.bytes} bytes with sha256 {item.sha256}",
                    "the object was changed or cut short on the target: use another copy (`offsite:<id>`)",
                )
        manifest = Manifest.read(partial)
        verdict: Verdict = verify_set(
            partial, manifest, kind="verify", bin_dir=settings.pg_bin_dir, clock=clock, cancel=cancel
        )
        if not verdict.ok:
            raise VerificationError(
                f"offsite copy {copy.id} decrypted but does not match its manifest: {verdict.error}",
                "use another copy (`offsite:<id>`); the copies were not changed",
            )
        Verification.record(partial, verdict)
        os.replace(partial, final)
    except WrongKeyError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        exc.hints = (*exc.hints, "the copies were not changed")
        raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    logger.info("offsite copy fetched set=%s files=%d into=%s", copy.id, len(copy.files), final)
    return BackupSet(copy.id, final, manifest, Verification.read(final))


def scratch_dir(settings: Settings) -> Path:
    """A private directory on the backups volume for a fetched copy (`.offsite-*`: never scanned as sets)."""
    settings.backup_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".offsite-", dir=settings.backup_dir))


__all__ = ["PREFIX", "OffsiteCopy", "Remote", "copy_set", "fetch_copy", "prune_copies", "resolve", "scratch_dir"]
