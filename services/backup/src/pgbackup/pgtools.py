"""The PostgreSQL client and server programs: where they are, which version, how to run them safely.

A client program reaches the source server through `--dbname=<conninfo>` (target.py says why not PG*
environment variables), a conninfo psycopg quoted, so that no database name is misread as connection options.
Passwords reach a child only through PGPASSWORD in its environment, never on its command line.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pgbackup.cancel import Cancellation
from pgbackup.errors import ToolError
from pgbackup.target import APPLICATION_NAME, Target

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"\(PostgreSQL\)\s+(?P<major>\d+)(?:\.(?P<minor>\d+))?")
STDERR_TAIL = 2000


@dataclass(frozen=True, slots=True)
class ToolVersion:
    text: str
    major: int


def find_tool(name: str, bin_dir: Path | None) -> Path:
    """Absolute path of PostgreSQL program `name`, from BACKUP_PG_BIN_DIR or PATH."""
    found = shutil.which(name, path=str(bin_dir)) if bin_dir else shutil.which(name)
    if found is None:
        where = f"BACKUP_PG_BIN_DIR={bin_dir}" if bin_dir else "PATH"
        raise ToolError(
            f"unable to find {name} in {where}",
            "install the PostgreSQL client of the server's major version, "
            "or point BACKUP_PG_BIN_DIR at its bin directory",
        )
    return Path(found)


def tool_version(name: str, bin_dir: Path | None) -> ToolVersion:
    path = find_tool(name, bin_dir)
    result = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
    match = _VERSION.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise ToolError(f"unable to read the version of {path}: {result.stdout.strip()} {result.stderr.strip()}")
    return ToolVersion(text=result.stdout.strip(), major=int(match.group("major")))


def base_env() -> dict[str, str]:
    """The inherited environment minus every libpq and pgbackup variable (those are set explicitly)."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("PG", "BACKUP_"))}


def client_env(target: Target) -> dict[str, str]:
    """Environment for a client program given `--dbname=target.conninfo(...)`: only the password, if any."""
    env = base_env()
    if target.password is not None:
        env["PGPASSWORD"] = target.password
    return env


def local_env(socket_dir: Path, port: int, user: str, password: str, database: str) -> dict[str, str]:
    """Environment for a client program reaching a private server on its Unix socket."""
    env = base_env()
    env.update(
        PGHOST=str(socket_dir),
        PGPORT=str(port),
        PGUSER=user,
        PGPASSWORD=password,
        PGDATABASE=database,
        PGAPPNAME=APPLICATION_NAME,
    )
    return env


def _failure(what: str, argv: Sequence[str], code: int, stderr: str) -> ToolError:
    tail = stderr.strip()[-STDERR_TAIL:] or "(no output)"
    return ToolError(f"unable to {what}: {Path(argv[0]).name} exited with status {code}: {tail}")


def run_tool(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    what: str,
    cancel: Cancellation | None = None,
    timeout: float | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a program to completion; raise ToolError (or AbortedError when cancelled) if it fails."""
    logger.debug("running %s", " ".join(argv))
    process = subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with cancel.process(process) if cancel is not None else nullcontext():
        try:
            stdout, stderr = process.communicate(input=input_text, timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise ToolError(f"unable to {what}: {Path(argv[0]).name} did not finish within {timeout:g} s") from None
    if cancel is not None:
        cancel.check()
    if process.returncode != 0:
        raise _failure(what, argv, process.returncode, stderr)
    return subprocess.CompletedProcess(list(argv), process.returncode, stdout, stderr)


class BackgroundTool:
    """A program started now and finished later (pg_dump runs while the row counts are taken)."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], what: str, cancel: Cancellation) -> None:
        self.argv = list(argv)
        self.what = what
        self.cancel = cancel
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        logger.debug("starting %s", " ".join(self.argv))
        self.process = subprocess.Popen(
            self.argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        self._registration = cancel.process(self.process)
        self._registration.__enter__()

    def finish(self) -> None:
        """Wait for the program; raise ToolError or AbortedError when it did not succeed."""
        try:
            code = self.process.wait()
        finally:
            self._registration.__exit__(None, None, None)
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        self.cancel.check()
        if code != 0:
            raise _failure(self.what, self.argv, code, stderr)

    def stop(self) -> None:
        """Terminate the program if it still runs; `finish()` (running in another thread) reaps it."""
        if self.process.poll() is None:
            try:
                self.process.terminate()
            except ProcessLookupError:  # it exited between poll() and terminate()
                pass
