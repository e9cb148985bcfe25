"""Client-side encryption of offsite copies with `age` (https://age-encryption.org, Debian's `age` package).

The sidecar holds only the recipients (public keys, BACKUP_OFFSITE_RECIPIENTS) and encrypts; the identity (the
private key) that decrypts is handed in by the operator for one command (`make verify-offsite AGE_KEY=...`,
`make restore BACKUP=offsite:... AGE_KEY=...`) and lives in the container's memory-backed /tmp meanwhile.
Files stream through the `age` program: a set is never held in memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pgbackup.errors import ToolError, WrongKeyError

CHUNK = 1024 * 1024
HEADER = b"age-encryption.org/v1"
"""The first bytes of every age file (its text header)."""
# bech32: `age1` then 58 characters of the bech32 alphabet (no 1, b, i, o)
RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
_NO_MATCH = "no identity matched any of the recipients"


def parse_recipients(text: str) -> tuple[str, ...]:
    """age public keys, comma-separated (`age1...`); ValueError (with a hint) for anything else."""
    recipients = tuple(part.strip() for part in text.split(",") if part.strip())
    if not recipients:
        raise ValueError("names no recipient\nhint: set the public key(s) made by `age-keygen` (age1...)")
    for recipient in recipients:
        if recipient.startswith("AGE-SECRET-KEY-"):
            raise ValueError(
                "holds a private key (AGE-SECRET-KEY-...)\n"
                "hint: the sidecar needs only the public key: `age-keygen -y key.txt` prints it; keep key.txt offline"
            )
        if not RECIPIENT.match(recipient):
            raise ValueError(
                f"{recipient[:12]!r}... is not an age public key\nhint: use the age1... line of age-keygen"
            )
    if len(set(recipients)) != len(recipients):
        raise ValueError("names a recipient twice\nhint: list each once")
    return recipients


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"unable to find {name} in PATH", "the backup image installs Debian's age package")
    return found


def encrypt(source: Path, recipients: Sequence[str], sink: Callable[[bytes], object]) -> tuple[int, str]:
    """Encrypt `source` to `recipients`, handing the ciphertext to `sink` chunk by chunk; (bytes, sha256) of
    the ciphertext. `sink` raising stops age and propagates."""
    argv = [_program("age"), "--encrypt"]
    for recipient in recipients:
        argv += ["--recipient", recipient]
    argv.append(str(source))
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
        assert process.stdout is not None  # stdout=PIPE
        try:
            for chunk in iter(lambda: process.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
                digest.update(chunk)
                size += len(chunk)
                sink(chunk)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            process.stdout.close()
        if process.wait() != 0:
            errors.seek(0)
            raise ToolError(
                f"unable to encrypt {source.name} with age: {errors.read().decode(errors='replace').strip()}"
            )
    return size, digest.hexdigest()


def decrypt(chunks: Iterator[bytes], identity: Path, target: Path, *, what: str) -> tuple[int, str]:
    """Decrypt the ciphertext `chunks` with `identity` into `target`; (bytes, sha256) of the ciphertext.
    WrongKeyError when the identity is not one the file was encrypted to."""
    argv = [_program("age"), "--decrypt", "--identity", str(identity), "--output", str(target)]
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        assert process.stdin is not None  # stdin=PIPE
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                process.stdin.write(chunk)
        except BrokenPipeError:
            pass  # age stopped reading (a wrong key fails on the header): its status and message say why
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass  # as above
        status = process.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip()
    if status != 0:
        target.unlink(missing_ok=True)
        if _NO_MATCH in message:
            raise WrongKeyError(f"unable to decrypt {what}: the key does not decrypt it ({message})")
        if size == 0:  # `rclone cat` of a missing object prints nothing and succeeds
            raise ToolError(
                f"unable to decrypt {what}: no bytes arrived (the object is missing or empty on the target)"
            )
        raise ToolError(f"unable to decrypt {what} with age: {message}")
    return size, digest.hexdigest()


def identity_recipient(identity: Path) -> str:
    """The public key (recipient) of an age identity file; WrongKeyError when it holds no age identity."""
    result = subprocess.run(
        [_program("age-keygen"), "-y", str(identity)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    lines = result.stdout.split()
    if result.returncode != 0 or not lines:
        raise WrongKeyError(
            f"unable to read an age identity from the key given: {result.stderr.strip() or 'it is empty'}",
            "AGE_KEY must name the file `age-keygen -o key.txt` wrote (AGE-SECRET-KEY-... line)",
        )
    return lines[0]


@contextmanager
def identity_file(source: str) -> Iterator[Path]:
    """The identity at path `source`, or read from standard input for `-` (how the ops scripts hand it in:
    the container never needs to read the operator's file) into a 0600 file in /tmp, removed afterwards."""
    if source != "-":
        yield Path(source)
        return
    directory = Path(tempfile.mkdtemp(prefix="pgbackup-age-"))
    path = directory / "identity"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            _copy(_stdin(), stream)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _stdin() -> IO[bytes]:
    import sys

    return sys.stdin.buffer


def _copy(source: IO[bytes], target: IO[bytes]) -> None:
    for chunk in iter(lambda: source.read(CHUNK), b""):
        target.write(chunk)


__all__ = ["HEADER", "decrypt", "encrypt", "identity_file", "identity_recipient", "parse_recipients"]
