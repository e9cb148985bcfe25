"""The front door and the ops/ scripts that need no Docker: make help, secrets, clean's refusal, and the
postgres stand-in entrypoint's functions (sourced, as its sourced-guard allows)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.native_pg import SERVICE_USER, service_user_ids

REPO = Path(__file__).resolve().parents[3]
ENTRYPOINT = REPO / "ops" / "images" / "postgres" / "docker-entrypoint.sh"


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )


def phony_targets() -> set[str]:
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    targets: set[str] = set()
    for line in text.splitlines():
        if line.startswith(".PHONY:"):
            targets.update(line.split(":", 1)[1].split())
    return targets


def test_bare_make_prints_help_with_every_phony_target() -> None:
    result = make()
    assert result.returncode == 0, result.stderr
    listed = {re.sub(r"\x1b\[[0-9;]*m", "", line).split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert phony_targets() <= listed, f"missing from make help: {phony_targets() - listed}"
    for line in result.stdout.splitlines():
        assert len(line.split(None, 1)) == 2, f"target without a description: {line!r}"


def test_secrets_are_generated_once_strong_and_private(tmp_path: Path) -> None:
    env = {**os.environ, "SECRETS_DIR": str(tmp_path / "secrets")}
    subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, check=True, capture_output=True)
    files = sorted((tmp_path / "secrets").iterdir())
    assert [f.name for f in files] == [
        "app_owner_password",
        "backup_password",
        "mcp_api_keys",
        "mcp_reader_password",
        "postgres_password",
    ]
    first = {f.name: f.read_text() for f in files}
    for path in files:
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600, path
        if os.geteuid() == 0:
            assert (info.st_uid, info.st_gid) == (999, 999), path
    for name in ("app_owner_password", "backup_password", "mcp_reader_password", "postgres_password"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{40,}\n", first[name]), name
    key_lines = [line for line in first["mcp_api_keys"].splitlines() if line and not line.startswith("#")]
    assert len(key_lines) == 1 and re.fullmatch(r"default:[A-Za-z0-9_-]{40,}", key_lines[0])
    assert len(set(first.values())) == len(first), "two secrets are equal"
    # a second run keeps every value
    subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, check=True, capture_output=True)
    assert {f.name: f.read_text() for f in files} == first


def test_clean_refuses_without_force_when_nobody_can_answer() -> None:
    result = subprocess.run(
        [str(REPO / "ops" / "clean.sh")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "FORCE": "", "COMPOSE_PROJECT_NAME": "pgstack-nothing"},
        check=False,
    )
    assert result.returncode == 1
    assert "FORCE=1" in result.stderr and "refusing" in result.stderr


def source_entrypoint(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source "{ENTRYPOINT}"; {script}'],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **(env or {})},
        check=False,
    )


def test_entrypoint_file_env_reads_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret-from-file\n")
    result = source_entrypoint(
        'docker_file_env POSTGRES_PASSWORD; printf "%s|%s" "$POSTGRES_PASSWORD" "${POSTGRES_PASSWORD_FILE-unset}"',
        {"POSTGRES_PASSWORD_FILE": str(secret)},
    )
    assert result.stdout == "s3cret-from-file|unset"


def test_entrypoint_file_env_refuses_both(tmp_path: Path) -> None:
    result = source_entrypoint(
        "docker_file_env POSTGRES_PASSWORD", {"POSTGRES_PASSWORD": "a", "POSTGRES_PASSWORD_FILE": str(tmp_path / "pw")}
    )
    assert result.returncode == 1
    assert "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)" in result.stderr


def test_entrypoint_file_env_default() -> None:
    result = source_entrypoint('docker_file_env POSTGRES_USER postgres; printf "%s" "$POSTGRES_USER"')
    assert result.stdout == "postgres"


@pytest.mark.parametrize(
    ("args", "wants_help"), [("postgres --version", 0), ("postgres -V", 0), ("postgres -c x=y", 1), ("postgres", 1)]
)
def test_entrypoint_skips_init_for_help_and_version(args: str, wants_help: int) -> None:
    assert source_entrypoint(f"_pg_want_help {args}").returncode == wants_help


def test_entrypoint_requires_a_password() -> None:
    result = source_entrypoint("POSTGRES_PASSWORD=; POSTGRES_HOST_AUTH_METHOD=scram-sha-256; docker_verify_minimum_env")
    assert result.returncode == 1
    assert "superuser password is not specified" in result.stderr


def test_readme_lists_every_target_as_make_help_describes_it() -> None:
    """The README's target table is the Makefile's `## text`, word for word (one source of truth)."""
    makefile = {
        match.group(1): match.group(2).strip()
        for match in re.finditer(r"^([a-zA-Z0-9_./-]+):.*?## (.*)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    }
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Make targets", 1)[1].split("\n## ", 1)[0]
    documented = {
        match.group(1): match.group(2).replace("\\|", "|").strip()
        for match in re.finditer(r"^\| `([^`]+)` \| (.*) \|$", section, re.MULTILINE)
    }
    assert documented == makefile


def test_docker_engine_says_what_to_install_where_it_cannot() -> None:
    """Not root and no docker: stop with what to install, never a stack trace or a silent failure."""
    if os.geteuid() != 0:
        user_prefix: list[str] = []
    else:
        service_user_ids()  # creates the unprivileged user when it is missing
        user_prefix = ["runuser", "-u", SERVICE_USER, "--"]
    # pytest's tmp_path is private to root: the unprivileged user needs a directory it can enter
    scratch = Path(tempfile.mkdtemp(prefix="pgstack-engine-"))
    scratch.chmod(0o755)
    tools = scratch / "bin"
    tools.mkdir(mode=0o755)
    tools.chmod(0o755)  # whatever the process umask
    for tool in ("bash", "id", "grep", "dirname", "basename", "cat", "tail", "env"):
        # the system's copies: a caller's PATH may point into directories only root can enter (pyenv)
        system_tool = shutil.which(tool, path="/usr/bin:/bin")
        assert system_tool, f"{tool} is missing from /usr/bin and /bin"
        (tools / tool).symlink_to(system_tool)
    try:
        result = subprocess.run(
            [
                *user_prefix,
                str(tools / "env"),
                f"PATH={tools}",
                str(tools / "bash"),
                str(REPO / "ops" / "docker-engine.sh"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        shutil.rmtree(scratch)
    assert result.returncode == 1
    assert "missing: docker.io" in result.stderr
    assert "install Docker Engine" in result.stderr
