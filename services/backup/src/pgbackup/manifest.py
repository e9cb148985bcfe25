"""The JSON manifest of a backup set and the verification record beside it.

`manifest.json` is written once, last, when every file of the set is on disk; it never changes after.
`verification.json` is rewritten by every verification (right after the backup, and by `verify`).
Both carry a `format` number; a reader refuses a format it does not know instead of guessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pgbackup.clock import from_iso, to_iso
from pgbackup.errors import VerificationError
from pgbackup.files import read_json, write_json_atomic

FORMAT = 1
MANIFEST_NAME = "manifest.json"
VERIFICATION_NAME = "verification.json"
GLOBALS_NAME = "globals.sql"


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class TableCount:
    """Exact row count of one table, taken in the snapshot the dump used."""

    schema: str
    table: str
    rows: int


@dataclass(frozen=True, slots=True)
class Membership:
    """`member_of` entry of a role: GRANT <role> TO <member> WITH ADMIN/INHERIT/SET options."""

    role: str
    admin: bool
    inherit: bool
    set: bool


@dataclass(frozen=True, slots=True)
class Role:
    """A role as pg_roles describes it (never its password), with its global settings and memberships."""

    name: str
    superuser: bool
    inherit: bool
    createrole: bool
    createdb: bool
    login: bool
    replication: bool
    bypassrls: bool
    connection_limit: int
    valid_until: str | None
    settings: tuple[str, ...] = ()  # "name=value", as in pg_db_role_setting
    member_of: tuple[Membership, ...] = ()


@dataclass(frozen=True, slots=True)
class Grant:
    """One privilege on a database; grantee None is PUBLIC."""

    grantee: str | None
    privilege: str
    grantable: bool


@dataclass(frozen=True, slots=True)
class DatabaseSetting:
    """ALTER DATABASE d SET (role None) or ALTER ROLE r IN DATABASE d SET; `setting` is "name=value"."""

    role: str | None
    setting: str


@dataclass(frozen=True, slots=True)
class Database:
    """One dumped database: its archive, its creation properties, and what the snapshot held."""

    name: str
    file: str
    owner: str
    encoding: str
    locale_provider: str  # libc, icu or builtin
    collate: str
    ctype: str
    locale: str | None
    icu_rules: str | None
    acl: tuple[Grant, ...] | None  # None: the default privileges (datacl IS NULL)
    settings: tuple[DatabaseSetting, ...]
    snapshot: str
    snapshot_at: datetime
    tables: tuple[TableCount, ...]
    objects: dict[str, int] = field(default_factory=dict)  # relations by kind: table, index, view, ...


@dataclass(frozen=True, slots=True)
class Manifest:
    id: str
    tool_version: str
    server_version: str
    server_version_num: int
    pg_dump_version: str
    host: str
    port: int
    user: str
    started_at: datetime
    finished_at: datetime
    files: tuple[FileEntry, ...]
    roles: tuple[Role, ...]
    databases: tuple[Database, ...]
    bootstrap_superuser: str = "postgres"  # the role with OID 10, made by initdb
    role_passwords: bool = False

    @property
    def bytes(self) -> int:
        return sum(entry.bytes for entry in self.files)

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def snapshot_at(self) -> datetime:
        """The oldest point in time the set restores to: what RPO and freshness are measured from."""
        return min((database.snapshot_at for database in self.databases), default=self.started_at)

    def database(self, name: str) -> Database:
        for database in self.databases:
            if database.name == name:
                return database
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = FORMAT
        data["started_at"] = to_iso(self.started_at)
        data["finished_at"] = to_iso(self.finished_at)
        data["bytes"] = self.bytes
        data["duration_seconds"] = round(self.duration_seconds, 3)
        for database, source in zip(data["databases"], self.databases, strict=True):
            database["snapshot_at"] = to_iso(source.snapshot_at)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("format") != FORMAT:
            raise ValueError(f"manifest format {data.get('format')!r} is not {FORMAT}: use a pgbackup that wrote it")
        return cls(
            id=data["id"],
            tool_version=data["tool_version"],
            server_version=data["server_version"],
            server_version_num=int(data["server_version_num"]),
            pg_dump_version=data["pg_dump_version"],
            host=data["host"],
            port=int(data["port"]),
            user=data["user"],
            started_at=from_iso(data["started_at"]),
            finished_at=from_iso(data["finished_at"]),
            files=tuple(FileEntry(**entry) for entry in data["files"]),
            roles=tuple(_role(entry) for entry in data["roles"]),
            databases=tuple(_database(entry) for entry in data["databases"]),
            bootstrap_superuser=str(data.get("bootstrap_superuser", "postgres")),
            role_passwords=bool(data.get("role_passwords", False)),
        )

    def write(self, directory: Path) -> None:
        write_json_atomic(directory / MANIFEST_NAME, self.to_dict())

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_NAME
        try:
            return cls.from_dict(read_json(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VerificationError(
                f"unable to read the manifest {path}: {exc}",
                "the set is damaged: verify the others with `python -m pgbackup verify` and use an older set",
            ) from exc


def _role(data: dict[str, Any]) -> Role:
    return Role(
        **{key: value for key, value in data.items() if key not in ("settings", "member_of")},
        settings=tuple(data.get("settings", ())),
        member_of=tuple(Membership(**entry) for entry in data.get("member_of", ())),
    )


def _database(data: dict[str, Any]) -> Database:
    acl = data.get("acl")
    return Database(
        name=data["name"],
        file=data["file"],
        owner=data["owner"],
        encoding=data["encoding"],
        locale_provider=data["locale_provider"],
        collate=data["collate"],
        ctype=data["ctype"],
        locale=data.get("locale"),
        icu_rules=data.get("icu_rules"),
        acl=None if acl is None else tuple(Grant(**entry) for entry in acl),
        settings=tuple(DatabaseSetting(**entry) for entry in data.get("settings", ())),
        snapshot=data["snapshot"],
        snapshot_at=from_iso(data["snapshot_at"]),
        tables=tuple(TableCount(**entry) for entry in data["tables"]),
        objects=dict(data.get("objects", {})),
    )


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of the last verification of a set."""

    ok: bool
    verified_at: datetime
    checks: tuple[str, ...]
    error: str | None = None

    def write(self, directory: Path) -> None:
        write_json_atomic(
            directory / VERIFICATION_NAME,
            {
                "format": FORMAT,
                "ok": self.ok,
                "verified_at": to_iso(self.verified_at),
                "checks": list(self.checks),
                "error": self.error,
            },
        )

    @classmethod
    def read(cls, directory: Path) -> Verification | None:
        """The record, or None when the set was never verified or the record is unreadable."""
        try:
            data = read_json(directory / VERIFICATION_NAME)
            return cls(
                ok=bool(data["ok"]),
                verified_at=from_iso(data["verified_at"]),
                checks=tuple(data.get("checks", ())),
                error=data.get("error"),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
