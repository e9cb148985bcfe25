"""`make rotate-password` (ops/rotate-password.sh) against a native PostgreSQL: the role is required, the new
password is in its file before the database learns it, a write that fails leaves the database alone, and an
ALTER ROLE that fails puts the old file back. No password is ever one that no file holds.

The script reaches the database through `docker compose exec -T postgres bash -c SCRIPT`. Here `docker` is a
stand-in on PATH that runs SCRIPT on this machine, in a private mount namespace where /run/secrets/NAME is a
bind mount of each secret file as in the container, and where psql reaches the native server on 127.0.0.1 just
as it reaches PostgreSQL inside the container (PGPORT says which port). Each time it is called, the stand-in
records what the secrets directory holds at that moment. Mounts need root, as in CI. The real container path
is the stack tier's (tests/stack/test_rotate_password.py)."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from devtools.native_pg import BIN_DIR, NativePostgres
from devtools.paths import REPO
from tests.fixtures.pg import native_pg_fixture
from tests.fixtures.stack import ROLE_SECRETS
from tests.helpers import read_only

USAGE = "usage: make rotate-password ROLE=mcp_reader|backup_operator|app_owner|postgres|replicator"
SERVICE_UID = 999

rotation_pg = native_pg_fixture(scope="module", demo_orders=10, doc="A server whose passwords these tests rotate.")

FAKE_DOCKER = r"""#!/usr/bin/env bash
# `docker compose ... exec -T postgres COMMAND...` runs COMMAND here; every call is logged with a snapshot of
# the secrets directory (name=content lines) taken as it starts.
set -Eeuo pipefail
{
	printf 'call:'
	printf ' %q' "$@"
	printf '\n'
	for file in "$SECRETS_DIR"/*; do printf '%s=%s\n' "${file##*/}" "$(<"$file")"; done
} >>"$FAKE_DOCKER_LOG"
[[ "$1" == compose ]] || exit 64
shift
if [[ "$1" == version ]]; then
	echo 2.40.3
	exit 0
fi
shift 4 # --project-name NAME --file FILE
[[ -z "${FAKE_DOCKER_RECORD_ONLY:-}" ]] || exit 0
[[ "$1 $2 $3" == "exec -T postgres" ]] || { echo "docker stand-in: unexpected call: $*" >&2; exit 64; }
shift 3
# as in the container: /run/secrets/NAME is a bind mount of the secret file (here in a private mount namespace)
exec unshare --mount --propagation private bash -c '
	set -Eeuo pipefail
	mount -t tmpfs -o size=1m pgstack-test /run
	mkdir /run/secrets
	for name in postgres_password app_owner_password mcp_reader_password backup_password; do
		touch "/run/secrets/$name"
		mount --bind "$SECRETS_DIR/$name" "/run/secrets/$name"
	done
	exec "$@"' container "$@"
"""


@dataclass
class Rotation:
    """One test's secrets directory (the server's current passwords, as ops/secrets.sh writes them), the
    environment that sends the script's docker calls to the stand-in, and the stand-in's log."""

    server: NativePostgres
    secrets_dir: Path
    env: dict[str, str]
    log: Path

    def path(self, role: str) -> Path:
        return self.secrets_dir / ROLE_SECRETS[role]

    def password(self, role: str) -> str:
        return self.path(role).read_text().strip()

    def files(self) -> dict[str, str]:
        return {path.name: path.read_text() for path in sorted(self.secrets_dir.iterdir())}

    def calls(self) -> list[str]:
        return [line.removeprefix("call: ") for line in self.log.read_text().splitlines() if line.startswith("call: ")]

    def snapshot_at_exec(self) -> dict[str, str]:
        """What the secrets directory held when the database was asked to change (the `exec` call)."""
        snapshot: dict[str, str] = {}
        lines = self.log.read_text().splitlines()
        for index, line in enumerate(lines):
            if line.startswith("call: ") and " exec " in line:
                for entry in lines[index + 1 :]:
                    if entry.startswith("call: "):
                        break
                    name, _, content = entry.partition("=")
                    snapshot[name] = content
                return snapshot
        raise AssertionError(f"the database was never asked to change; calls: {self.calls()}")

    def accepts(self, role: str, password: str) -> bool:
        try:
            with psycopg.connect(
                host=self.server.host,
                port=self.server.port,
                dbname=self.server.database,
                user=role,
                password=password,
                connect_timeout=10,
            ):
                return True
        except psycopg.OperationalError as exc:
            assert "password authentication failed" in str(exc), exc
            return False

    def run(self, *args: str, make: bool = False) -> subprocess.CompletedProcess[str]:
        command = (
            ["make", "--no-print-directory", "-C", str(REPO), "rotate-password", *args]
            if make
            else [str(REPO / "ops" / "rotate-password.sh"), *args]
        )
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def rotation(rotation_pg: NativePostgres, tmp_path: Path) -> Iterator[Rotation]:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    for role, name in ROLE_SECRETS.items():
        path = secrets_dir / name
        path.write_text(rotation_pg.passwords[role] + "\n")
        path.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(path, SERVICE_UID, SERVICE_UID)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "docker").write_text(FAKE_DOCKER)
    (tools / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    log.touch()
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("PG") and name != "ROLE"}
    env = {
        **inherited,
        "PATH": f"{tools}{os.pathsep}{BIN_DIR}{os.pathsep}{os.environ['PATH']}",
        "PGPORT": str(rotation_pg.port),
        "SECRETS_DIR": str(secrets_dir),
        "COMPOSE_PROJECT_NAME": "pgstack-rotation-test",
        "FAKE_DOCKER_LOG": str(log),
    }
    state = Rotation(rotation_pg, secrets_dir, env, log)
    yield state
    # every test ends with each file holding its role's password: the next one starts from those
    rotation_pg.passwords.update({role: state.password(role) for role in ROLE_SECRETS})


def assert_untouched(rotation: Rotation, role: str, before: dict[str, str]) -> None:
    """The secrets are byte for byte what they were, nothing was left beside them, and the database still
    accepts the role's old password."""
    assert rotation.files() == before
    assert rotation.accepts(role, before[ROLE_SECRETS[role]].strip())


@pytest.mark.parametrize("args", [(), ("ROLE=",), ("ROLE=nobody",)], ids=["no-role", "empty-role", "unknown-role"])
def test_make_rotate_password_requires_a_role_and_touches_nothing(rotation: Rotation, args: tuple[str, ...]) -> None:
    before = rotation.files()
    result = rotation.run(*args, make=True)
    assert result.returncode == 2, result.stderr
    assert USAGE in result.stderr
    assert rotation.calls() == [], "nothing may reach Docker (or the database) without a role"
    assert_untouched(rotation, "postgres", before)


def test_the_shared_role_variable_still_defaults_to_postgres_for_psql(rotation: Rotation) -> None:
    rotation.env["FAKE_DOCKER_RECORD_ONLY"] = "1"
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "psql"],
        env=rotation.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [call] = [call for call in rotation.calls() if " exec " in call]
    assert call.endswith("psql postgres_password postgres"), call


@pytest.mark.parametrize("role", ["app_owner", "postgres"])
def test_the_file_holds_the_new_password_before_the_database_does(rotation: Rotation, role: str) -> None:
    path = rotation.path(role)
    old = rotation.password(role)
    inode = path.stat().st_ino
    result = rotation.run(role)
    assert result.returncode == 0, result.stderr
    new = rotation.password(role)
    assert new != old and len(new) >= 40
    during = rotation.snapshot_at_exec()
    assert during[path.name] == new, "the new password is written before ALTER ROLE runs"
    assert during[f"{path.name}.previous"] == old, "the old one is kept while the database changes"
    assert rotation.accepts(role, new) and not rotation.accepts(role, old)
    assert sorted(rotation.files()) == sorted(ROLE_SECRETS.values()), ".previous is gone afterwards"
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (SERVICE_UID, SERVICE_UID)
    assert info.st_ino == inode, "rewritten in place: the containers' bind mounts of the file see the new password"
    assert f"updated {path}" in result.stderr


def test_rotating_postgres_logs_in_with_its_old_password(rotation: Rotation) -> None:
    """The superuser's file holds the new password by the time ALTER ROLE runs: the script must log in with
    the one it read before, or it locks itself out."""
    old = rotation.password("postgres")
    assert rotation.run("postgres").returncode == 0
    assert rotation.snapshot_at_exec()["postgres_password"] != old
    assert rotation.accepts("postgres", rotation.password("postgres"))
    # and the next rotation, of another role, logs in with the new one
    assert rotation.run("app_owner").returncode == 0
    assert rotation.accepts("app_owner", rotation.password("app_owner"))


@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_write_that_fails_leaves_the_database_alone(rotation: Rotation, what: str) -> None:
    role = "app_owner"
    before = rotation.files()
    with read_only(rotation.path(role) if what == "file" else rotation.secrets_dir):
        result = rotation.run(role)
    assert result.returncode == 1, result.stderr
    assert "the old password still works" in result.stderr and "hint:" in result.stderr
    assert [call for call in rotation.calls() if " exec " in call] == [], "the database must not be asked"
    assert_untouched(rotation, role, before)


@contextmanager
def renamed(rotation: Rotation, role: str, new_name: str) -> Iterator[None]:
    """`role` missing from the database for a while: renamed (SCRAM passwords survive a rename)."""
    with psycopg.connect(rotation.server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(role), sql.Identifier(new_name)))
    try:
        yield
    finally:
        with psycopg.connect(rotation.server.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(new_name), sql.Identifier(role)))


def test_an_alter_role_that_fails_puts_the_old_file_back(rotation: Rotation) -> None:
    role = "app_owner"
    before = rotation.files()
    with renamed(rotation, role, "app_owner_elsewhere"):
        result = rotation.run(role)
        assert result.returncode == 1, result.stderr
        assert f"{rotation.path(role)} holds the old one again" in result.stderr
        assert rotation.snapshot_at_exec()[rotation.path(role).name] != before[rotation.path(role).name].strip()
    assert_untouched(rotation, role, before)


def test_a_database_that_is_down_gets_the_old_file_back(rotation: Rotation) -> None:
    role = "app_owner"
    before = rotation.files()
    rotation.server.stop()
    try:
        result = rotation.run(role)
    finally:
        rotation.server.restart()
    assert result.returncode == 1, result.stderr
    assert "holds the old one again" in result.stderr
    assert_untouched(rotation, role, before)
