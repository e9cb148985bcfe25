"""BACKUP_DATABASE_URL: a backup, its verification and a restore through one URL (URI and key/value form), a host
list whose first host is down, the rules between the URL and the split settings (exit 3), connection failures
that say what to fix (exit 5, the permanent ones at once), no password on any command line or in any log, and a
drill that never connects to the URL's server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from devtools.native_pg import NativePostgres
from devtools.net import free_port
from pgbackup import config
from pgbackup.__main__ import main
from pgbackup.config import SPECS, Settings, Spec
from pgbackup.db import connect
from pgbackup.errors import ConfigError, ExitCode
from pgbackup.manifest import Manifest
from tests.fast.backup.helpers import only_set, server_url, settings_of, superuser_connect, url_env

TARGET = "restore_via_url"
TOOLS = ("pg_dump", "pg_dumpall", "pg_restore", "psql")
SPLIT = [spec.name for spec in SPECS if spec.connection]


@dataclass
class Child:
    argv: list[str]
    env: dict[str, str] = field(repr=False)

    @property
    def tool(self) -> str:
        return Path(self.argv[0]).name

    @property
    def conninfo(self) -> dict[str, Any] | None:
        """The parsed --dbname of a client program, if it has one."""
        given = [arg.removeprefix("--dbname=") for arg in self.argv if arg.startswith("--dbname=")]
        return conninfo_to_dict(given[0]) if given else None


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[Child]:
    """Every process pgbackup starts (pgtools runs them all through subprocess.Popen): its argv and environment."""
    started: list[Child] = []
    real = subprocess.Popen

    class Recording(real):  # type: ignore[valid-type, misc]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            started.append(Child([str(arg) for arg in args], dict(kwargs.get("env") or {})))
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    return started


@pytest.fixture
def target(superuser: psycopg.Connection[Any]) -> Iterator[str]:
    superuser.execute(f"DROP DATABASE IF EXISTS {TARGET} WITH (FORCE)")
    yield TARGET
    superuser.execute(f"DROP DATABASE IF EXISTS {TARGET} WITH (FORCE)")


def secret_file(directory: Path, text: str) -> str:
    path = directory / f"secret-{len(list(directory.glob('secret-*')))}"
    path.write_text(text + "\n")
    return str(path)


def restore_env(pg: NativePostgres, backup_dir: Path, form: str) -> dict[str, str]:
    """The restore's URL names the server and the superuser; the URI form's password comes from a file."""
    if form == "uri":
        password = secret_file(backup_dir.parent, pg.passwords["postgres"])
        return url_env(pg, backup_dir, server_url(pg, "postgres"), "postgres", BACKUP_PGPASSWORD_FILE=password)
    return url_env(pg, backup_dir, server_url(pg, "postgres", form="kv", password=True), "postgres")


def count_orders(pg: NativePostgres, database: str) -> int:
    with superuser_connect(pg, database) as conn:
        row = conn.execute("SELECT count(*) FROM shop.orders").fetchone()
    assert row is not None
    return int(row[0])


# -- backup, verify and restore through the URL -------------------------------------------------------------------


@pytest.mark.parametrize("form", ["uri", "kv"])
def test_backup_verify_and_restore_through_the_url(
    pg: NativePostgres,
    tmp_path: Path,
    form: str,
    target: str,
    children: list[Child],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """URI form: the password in BACKUP_PGPASSWORD_FILE (the normal case); key/value form: in the URL. Either
    way it reaches pg_dump, pg_dumpall and pg_restore through PGPASSWORD only: never argv, logs, manifest."""
    backup_dir = tmp_path / "backups"
    if form == "uri":
        password_file = secret_file(tmp_path, pg.passwords["backup_operator"])
        env = url_env(pg, backup_dir, server_url(pg), BACKUP_PGPASSWORD_FILE=password_file)
    else:
        env = url_env(pg, backup_dir, server_url(pg, form="kv", password=True))
    assert main(["backup"], environ=env) == ExitCode.OK
    assert main(["verify"], environ=env) == ExitCode.OK
    backup_set = only_set(settings_of(env))
    manifest = Manifest.read(backup_set.path)
    assert (manifest.host, manifest.port, manifest.user) == (pg.host, pg.port, "backup_operator")

    restoring = restore_env(pg, backup_dir, form)
    assert main(["restore", "--target-db", target], environ=restoring) == ExitCode.OK
    assert count_orders(pg, target) == count_orders(pg, "app")
    logs = capsys.readouterr()
    # never over an existing database without --force, and the error says how to ask for it
    assert main(["restore", "--target-db", target], environ=restoring) == ExitCode.TARGET_EXISTS
    refused = capsys.readouterr()
    assert f"unable to restore into {target}: the database exists" in refused.err and "FORCE=1" in refused.err
    assert main(["restore", "--target-db", target, "--force"], environ=restoring) == ExitCode.OK
    replaced = capsys.readouterr()
    assert "(replaced the existing database)" in replaced.out

    passwords = {role: pg.passwords[role] for role in ("backup_operator", "postgres")}
    tools = [child for child in children if child.tool in TOOLS and child.conninfo is not None]
    assert {child.tool for child in tools} == {"pg_dump", "pg_dumpall", "pg_restore"}
    for child in tools:
        conninfo = child.conninfo
        assert conninfo is not None and "password" not in conninfo, child
        assert (conninfo["host"], conninfo["port"]) == (pg.host, str(pg.port)), child
        assert child.env["PGPASSWORD"] == passwords[conninfo["user"]], child.argv
    for child in children:
        for password in passwords.values():
            assert all(password not in arg for arg in child.argv), child.argv
    text = "".join(output.out + output.err for output in (logs, refused, replaced))
    assert '"level": "DEBUG", "logger": "pgbackup.pgtools", "msg": "running ' in text, "the debug log shows argv"
    for written in (backup_set.path / "manifest.json", backup_dir / "state.json"):
        text += written.read_text()
    for password in passwords.values():
        assert password not in text


def test_a_host_list_whose_first_host_is_down(
    pg: NativePostgres, tmp_path: Path, children: list[Child], superuser: psycopg.Connection[Any], target: str
) -> None:
    """libpq skips the dead host; the snapshot, pg_dump, pg_dumpall, pg_restore and the counts then all use the
    one server the first connection reached (load_balance_hosts=random must not send pg_dump elsewhere)."""
    hosts = f"127.0.0.1:{free_port()},{pg.host}:{pg.port}"
    params = {"load_balance_hosts": "random", "target_session_attrs": "read-write"}
    env = url_env(
        pg,
        tmp_path / "backups",
        server_url(pg, hosts=hosts, **params),
        BACKUP_PGPASSWORD=pg.passwords["backup_operator"],
    )
    assert main(["backup"], environ=env) == ExitCode.OK
    manifest = only_set(settings_of(env)).manifest
    assert (manifest.host, manifest.port) == (pg.host, pg.port)
    restoring = url_env(
        pg,
        tmp_path / "backups",
        server_url(pg, "postgres", hosts=hosts, **params),
        "postgres",
        BACKUP_PGPASSWORD=pg.passwords["postgres"],
    )
    assert main(["restore", "--target-db", target], environ=restoring) == ExitCode.OK
    assert count_orders(pg, target) == count_orders(pg, "app")
    pinned = [child.conninfo for child in children if child.tool in TOOLS and child.conninfo is not None]
    assert len(pinned) == 3  # pg_dumpall, pg_dump of app, pg_restore
    for conninfo in pinned:
        assert conninfo is not None
        assert (conninfo["host"], conninfo["hostaddr"], conninfo["port"]) == (pg.host, "127.0.0.1", str(pg.port))
        assert "load_balance_hosts" not in conninfo and conninfo["target_session_attrs"] == "read-write"


def test_every_libpq_parameter_passes_through(pg: NativePostgres, tmp_path: Path, children: list[Child]) -> None:
    """Parameters libpq reads from no environment variable reach pg_dump too; the URL's application_name and
    options win over pgbackup's own (pgbackup only adds TimeZone=UTC to its options)."""
    params = {"keepalives_idle": "30", "application_name": "nightly-backup", "options": "-c work_mem=8MB"}
    env = url_env(pg, tmp_path / "backups", server_url(pg, **params), BACKUP_PGPASSWORD=pg.passwords["backup_operator"])
    settings = settings_of(env)
    with connect(settings.target) as conn:
        shown = conn.execute("SELECT current_setting('application_name'), current_setting('work_mem')").fetchone()
        assert shown == ("nightly-backup", "8MB") and conn.info.parameter_status("TimeZone") == "UTC"
    assert main(["backup"], environ=env) == ExitCode.OK
    [dump] = [child.conninfo for child in children if child.tool == "pg_dump" and child.conninfo is not None]
    assert dump is not None and {key: dump[key] for key in params} == params


def test_an_empty_split_setting_beside_the_url_counts_as_unset(pg: NativePostgres, tmp_path: Path) -> None:
    """What a Compose file for an external server writes to blank the split settings compose.yaml fixes."""
    env = url_env(pg, tmp_path / "backups", server_url(pg, password=True), **dict.fromkeys(SPLIT, ""))
    assert Settings.from_env(env).target.url == "BACKUP_DATABASE_URL"


def test_the_url_may_come_from_a_file(pg: NativePostgres, tmp_path: Path) -> None:
    url = server_url(pg, password=True)
    env = url_env(pg, tmp_path / "backups", "", BACKUP_DATABASE_URL_FILE=secret_file(tmp_path, url))
    del env["BACKUP_DATABASE_URL"]
    settings = Settings.from_env(env)
    assert settings.target.url == "BACKUP_DATABASE_URL_FILE"
    assert settings.target.password == pg.passwords["backup_operator"]
    assert pg.passwords["backup_operator"] not in repr(settings)
    assert main(["backup"], environ=env) == ExitCode.OK


# -- the rules: exit 3, both variables named, what to do ---------------------------------------------------------


def config_error(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["backup"], environ=env) == ExitCode.CONFIG
    output = capsys.readouterr()
    assert output.err.startswith("pgbackup backup: invalid configuration:\n"), output.err
    return output.err


@pytest.mark.parametrize("name", SPLIT)
@pytest.mark.parametrize("variable", ["BACKUP_DATABASE_URL", "BACKUP_DATABASE_URL_FILE"])
def test_a_split_connection_setting_beside_the_url_is_refused(
    pg: NativePostgres, tmp_path: Path, name: str, variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server_url(pg)
    env = url_env(pg, tmp_path / "backups", url, **{name: "5432"})
    if variable.endswith("_FILE"):
        del env["BACKUP_DATABASE_URL"]
        env[variable] = secret_file(tmp_path, url)
    error = config_error(env, capsys)
    assert f"  - both {variable} and {name} are set (but are exclusive)\n" in error
    assert "    hint: the URL is the whole connection: put those values into it (e.g. postgresql://" in error
    assert f"and unset {name}, or unset {variable}" in error


def test_the_rule_covers_a_split_setting_declared_later(
    pg: NativePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Computed from the declarations: a split setting declared `connection=True` (as BACKUP_PGSSLMODE is, and
    as this made-up one would be) is refused beside the URL, and without the URL its value reaches the keywords."""
    attrs = Spec("BACKUP_PGTARGETSESSIONATTRS", "target_session_attrs", str, "", "", "", "stack", connection=True)
    monkeypatch.setattr(config, "SPECS", (*SPECS, attrs))
    monkeypatch.setattr(config, "SPEC_NAMES", config.SPEC_NAMES | {attrs.name})
    env = url_env(pg, tmp_path / "backups", server_url(pg), BACKUP_PGHOST="db", BACKUP_PGTARGETSESSIONATTRS="any")
    assert (
        "  - both BACKUP_DATABASE_URL and BACKUP_PGHOST, BACKUP_PGTARGETSESSIONATTRS are set (but are exclusive)\n"
        in (config_error(env, capsys))
    )
    split = Settings.from_env({"BACKUP_PGTARGETSESSIONATTRS": "read-write"}).target
    assert split.get("target_session_attrs") == "read-write"


def test_the_tls_settings_are_split_connection_settings(
    pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BACKUP_PGSSLMODE and BACKUP_PGSSLROOTCERT go into every connection's keywords (pg_dump's conninfo too),
    and are refused beside the URL, which carries its own sslmode."""
    ca = tmp_path / "ca.crt"
    ca.write_text("a CA certificate\n")
    target = Settings.from_env({"BACKUP_PGSSLMODE": "verify-full", "BACKUP_PGSSLROOTCERT": str(ca)}).target
    assert (target.get("sslmode"), target.get("sslrootcert")) == ("verify-full", str(ca))
    assert f"sslmode=verify-full sslrootcert={ca}" in target.conninfo("app")
    assert target.setting("sslmode", "prefer") == "BACKUP_PGSSLMODE=prefer"
    env = url_env(pg, tmp_path / "backups", server_url(pg), BACKUP_PGSSLMODE="require")
    assert "  - both BACKUP_DATABASE_URL and BACKUP_PGSSLMODE are set (but are exclusive)\n" in config_error(
        env, capsys
    )


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"BACKUP_PGSSLMODE": "verify_full"},
            "BACKUP_PGSSLMODE='verify_full' is invalid: not a libpq sslmode\n"
            "    hint: use one of disable, allow, prefer, require, verify-ca, verify-full",
        ),
        (
            {"BACKUP_PGSSLMODE": "verify-full", "BACKUP_PGSSLROOTCERT": "/nonexistent/ca.crt"},
            "BACKUP_PGSSLROOTCERT='/nonexistent/ca.crt' is invalid: unable to read the CA file: No such file or "
            "directory\n    hint: mount the CA certificate there",
        ),
        (
            {"BACKUP_PGSSLMODE": "verify-full", "BACKUP_PGSSLROOTCERT": "ca.crt"},
            "BACKUP_PGSSLROOTCERT='ca.crt' is invalid: neither `system` nor an absolute path",
        ),
        (
            {"BACKUP_PGSSLMODE": "require", "BACKUP_PGSSLROOTCERT": "system"},
            'weak sslmode "require" may not be used with sslrootcert=system',
        ),
    ],
    ids=["sslmode", "missing-rootcert", "relative-rootcert", "system-needs-verify-full"],
)
def test_bad_tls_settings_are_refused_with_what_to_fix(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert problem in str(caught.value)


def test_a_missing_rootcert_is_not_read_by_commands_that_never_connect() -> None:
    """The drill container has no network and no secrets: it inherits BACKUP_PGSSLROOTCERT without the file."""
    env = {"BACKUP_PGSSLMODE": "verify-full", "BACKUP_PGSSLROOTCERT": "/nonexistent/ca.crt"}
    assert Settings.from_env(env, read_secrets=False).target.get("sslrootcert") == "/nonexistent/ca.crt"


def test_a_url_without_a_user_is_refused(
    pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = url_env(pg, tmp_path / "backups", f"postgresql://{pg.host}:{pg.port}/postgres")
    assert (
        "  - BACKUP_DATABASE_URL names no user (BACKUP_PGUSER does not apply with a URL)\n"
        "    hint: put the role in the URL: postgresql://backup_operator@db.example.com:5432/postgres?sslmode=verify-full"
    ) in config_error(env, capsys)


@pytest.mark.parametrize("variable", ["BACKUP_PGPASSWORD", "BACKUP_PGPASSWORD_FILE"])
def test_a_password_in_the_url_and_in_a_setting_is_refused(
    pg: NativePostgres, tmp_path: Path, variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    password = pg.passwords["backup_operator"]
    value = secret_file(tmp_path, password) if variable.endswith("_FILE") else password
    env = url_env(pg, tmp_path / "backups", server_url(pg, password=True), **{variable: value})
    error = config_error(env, capsys)
    assert (
        f"  - both a password in BACKUP_DATABASE_URL and {variable} are set (but are exclusive)\n"
        "    hint: remove the password from the URL and keep it in BACKUP_PGPASSWORD_FILE"
    ) in error
    assert password not in error


def test_connect_timeout_in_the_url_is_refused(
    pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = url_env(pg, tmp_path / "backups", server_url(pg, connect_timeout="5"))
    assert (
        "  - BACKUP_DATABASE_URL sets connect_timeout=5, which BACKUP_PGCONNECT_TIMEOUT sets for every connection\n"
        "    hint: remove connect_timeout from the URL and set BACKUP_PGCONNECT_TIMEOUT=5s"
    ) in config_error(env, capsys)


def test_a_secret_libpq_cannot_take_from_the_environment_is_refused(
    pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = url_env(pg, tmp_path / "backups", server_url(pg, sslpassword="key-passphrase-91c2"))
    error = config_error(env, capsys)
    assert "  - BACKUP_DATABASE_URL sets sslpassword, which pgbackup cannot hand to pg_dump" in error
    assert "key-passphrase-91c2" not in error


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://backup_operator:pass%zzword-77a1@h/postgres", 'invalid percent-encoded token: "<redacted>"'),
        (
            "http://backup_operator:password-77a1@h/postgres",
            'missing "=" after "http://backup_operator:<redacted>@h/postgres" in connection info string',
        ),
        ("host=h user=backup_operator password='password-77a1", "unterminated quoted string in connection info string"),
        (
            "postgresql://backup_operator:password-77a1@h/postgres?sslmdoe=require",
            'invalid URI query parameter: "sslmdoe"',
        ),
        ("postgresql://backup_operator:password-77a1@h/postgres?sslmode=requrie", 'invalid sslmode value: "requrie"'),
        (
            "host=h1,h2 port=5432,5433,5434 user=backup_operator password=password-77a1",
            "could not match 3 port numbers to 2 hosts",
        ),
        (
            "postgresql://backup_operator:password@-77a1@h/postgres",
            "an @ or / in its user or password is not percent-encoded, so libpq reads part of the password as the "
            "host, port or database",
        ),
        (
            "postgresql://backup_operator:password/-77a1@h/postgres",
            "an @ or / in its user or password is not percent-encoded",
        ),
        (
            "postgresql://backup_operator:pa?ss#-77a1@[::1/postgres",
            'end of string reached when looking for matching "]" in IPv6 host address in URI: '
            '"postgresql://backup_operator:<redacted>@[::1/postgres"',
        ),
    ],
    ids=["percent", "scheme", "quote", "keyword", "sslmode", "ports", "at", "slash", "ipv6"],
)
def test_a_malformed_url_is_refused_with_libpqs_reason_and_no_password(
    pg: NativePostgres, tmp_path: Path, url: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    error = config_error(url_env(pg, tmp_path / "backups", url), capsys)
    assert f"  - BACKUP_DATABASE_URL=<redacted> is invalid: {reason}" in error
    assert "-77a1" not in error


def test_url_and_url_file_are_exclusive(pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = url_env(pg, tmp_path / "backups", server_url(pg), BACKUP_DATABASE_URL_FILE=secret_file(tmp_path, "x"))
    assert "both BACKUP_DATABASE_URL and BACKUP_DATABASE_URL_FILE are set (but are exclusive)" in config_error(
        env, capsys
    )


# -- connection failures: exit 5 with what to fix; the permanent ones at once -----------------------------------


def unreachable(command: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """(stderr, stdout) of a command that must end with exit status 5."""
    capsys.readouterr()
    assert main(command, environ=env) == ExitCode.UNREACHABLE
    output = capsys.readouterr()
    return output.err, output.out


@pytest.mark.parametrize("command", [["backup"], ["backup", "--skip-checks"], ["run"]])
def test_a_refused_password_ends_at_once_with_what_to_fix(
    pg: NativePostgres, tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """BACKUP_CONNECT_RETRY=1h: a password retrying cannot fix is not retried."""
    url = f"postgresql://backup_operator:wrong-password-5e0d@{pg.host}:{pg.port}/postgres"
    env = url_env(pg, tmp_path / "backups", url, BACKUP_CONNECT_RETRY="1h", BACKUP_STATUS_PORT="0")
    err, out = unreachable(command, env, capsys)
    assert (
        f"unable to connect to {pg.host}:{pg.port} database postgres as backup_operator: the server refused the "
        "password of role backup_operator: "
    ) in err
    assert "hint: correct the password in BACKUP_DATABASE_URL (percent-encode" in err
    assert "retrying" not in out
    assert "wrong-password-5e0d" not in err + out


def test_restore_says_what_to_fix_too(
    pg: NativePostgres, shared_set_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = url_env(pg, shared_set_dir, server_url(pg, "postgres", database="no_such_maintenance_db"), "postgres")
    env["BACKUP_PGPASSWORD"] = pg.passwords["postgres"]
    err, _ = unreachable(["restore", "--target-db", TARGET], env, capsys)
    assert "database no_such_maintenance_db as postgres: the server has no database no_such_maintenance_db" in err
    assert "hint: correct the database name (dbname in BACKUP_DATABASE_URL, or BACKUP_DATABASES), or create it" in err


def test_tls_required_from_a_server_without_it_ends_at_once(
    pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The embedded server has no TLS: sslmode=require is a real failure, and no retry helps."""
    env = url_env(
        pg,
        tmp_path / "backups",
        server_url(pg, sslmode="require"),
        BACKUP_PGPASSWORD=pg.passwords["backup_operator"],
        BACKUP_CONNECT_RETRY="1h",
    )
    err, out = unreachable(["backup"], env, capsys)
    assert "as backup_operator: the server does not offer TLS, but sslmode=require requires it: " in err
    assert "server does not support SSL, but SSL was required" in err
    assert "hint: turn TLS on at the server" in err and "set sslmode=prefer in BACKUP_DATABASE_URL" in err
    assert "retrying" not in out


def test_an_unreachable_port_is_retried_then_exits_5(
    pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = free_port()
    env = url_env(
        pg,
        tmp_path / "backups",
        server_url(pg, hosts=f"127.0.0.1:{dead}"),
        BACKUP_PGPASSWORD=pg.passwords["backup_operator"],
        BACKUP_CONNECT_RETRY="2s",
    )
    err, out = unreachable(["backup"], env, capsys)
    assert (
        f"unable to connect to 127.0.0.1:{dead} database postgres as backup_operator: nothing accepts connections "
        "there (connection refused): "
    ) in err
    assert "hint: start the server, or correct the host and port (host/port in BACKUP_DATABASE_URL)" in err
    retries = [json.loads(line) for line in out.splitlines() if "retrying" in line]
    assert retries and retries[0]["msg"].startswith("database not reachable yet (refused), retrying in")


def test_a_url_without_any_password_is_allowed_until_the_server_asks(
    pg: NativePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No password at all is valid configuration (a client certificate, a passfile); this server wants one."""
    env = url_env(pg, tmp_path / "backups", server_url(pg))
    assert Settings.from_env(env).target.password is None
    err, _ = unreachable(["backup"], env, capsys)
    assert "the server asks for a password of role backup_operator and none is set" in err
    assert "hint: set BACKUP_PGPASSWORD_FILE to a file holding backup_operator's password" in err


# -- the drill never connects to the URL's server ----------------------------------------------------------------


@pytest.mark.parametrize("variable", ["BACKUP_DATABASE_URL", "BACKUP_DATABASE_URL_FILE"])
def test_the_drill_passes_while_the_urls_server_is_unreachable(
    pg: NativePostgres,
    set_copy: Path,
    variable: str,
    children: list[Child],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From sets already taken, with the URL's host down (or, as in the drill container, its secret file not
    mounted): the drill starts its own server and touches no other."""
    dead = free_port()
    url = f"postgresql://backup_operator@127.0.0.1:{dead}/postgres?sslmode=require"
    env = url_env(pg, set_copy, url)
    if variable.endswith("_FILE"):
        del env["BACKUP_DATABASE_URL"]
        env[variable] = str(set_copy / "not-mounted")
    connected: list[str] = []
    real = psycopg.Connection.connect

    def spy(conninfo: str = "", **kwargs: Any) -> Any:
        connected.append(str(kwargs.get("host") or conninfo_to_dict(conninfo).get("host")))
        return real(conninfo, **kwargs)

    monkeypatch.setattr(psycopg, "connect", spy)
    report = set_copy / "report.json"
    assert main(["drill", "--report", str(report)], environ=env) == ExitCode.OK
    assert json.loads(report.read_text())["passed"] is True
    assert connected, "the drill connects to its private server"
    assert all(host.startswith("/") for host in connected), connected  # the private server's socket only
    for child in children:
        assert str(dead) not in " ".join(child.argv) + " ".join(child.env.values()), child.argv
