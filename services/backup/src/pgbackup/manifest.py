"""The JSON manifest of a backup set and the verification record beside it.

`manifest.json` is written once, last, when every file of the set is on disk; it never changes after.
`verification.json` is the set's record of checks (format 2): the backup's own verification, then every `verify`,
scrub and restore drill, each appended and the file replaced atomically. The latest check is the set's verdict.
Both carry a `format` number; a reader refuses a format it does not know instead of guessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pgbackup.clock import from_iso, to_iso
from pgbackup.errors import VerificationError
from pgbackup.files import read_json, record_lock, write_json_atomic

FORMAT = 1
VERIFICATION_FORMAT = 2
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
    size_bytes: int | None = None  # pg_database_size in the snapshot; None in sets made before it was recorded


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
        data["databases"] = [
            {**asdict(database), "snapshot_at": to_iso(database.snapshot_at)} for database in self.databases
        ]
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
            role_passwords=bool(data.get("role_passwords")),
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
        size_bytes=None if data.get("size_bytes") is None else int(data["size_bytes"]),
    )


CHECK_KINDS = ("backup", "verify", "scrub", "drill", "recheck")
"""What checked a set: the backup that wrote and verified it, `verify`, a scrub, a restore drill, and the re-check
retention runs before it deletes a set for a failed check."""
HISTORY_LIMIT = 100
"""Checks kept in a set's record: the first (the backup's own) and the most recent ones."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check of a set: what ran it, when, which checks, and what failed (None when it passed)."""

    kind: str
    ok: bool
    at: datetime
    checks: tuple[str, ...]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "at": to_iso(self.at),
            "checks": list(self.checks),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        kind = str(data["kind"])
        if kind not in CHECK_KINDS:
            raise ValueError(f"unknown check kind {kind!r}")
        return cls(kind, bool(data["ok"]), from_iso(data["at"]), tuple(data.get("checks", ())), data.get("error"))

    def describe(self) -> str:
        """`scrub at 2026-01-02T03:04:05Z: db-app.dump: sha256 ...`, for lists, health and logs."""
        outcome = f": {self.error}" if self.error else ""
        return f"{self.kind} at {to_iso(self.at)}{outcome}"


@dataclass(frozen=True, slots=True)
class Verification:
    """Every check of a set, oldest first (`verification.json`). The latest decides: a set is good while its
    latest check passed, and a later check can change the verdict either way."""

    history: tuple[Verdict, ...]

    @property
    def latest(self) -> Verdict:
        return self.history[-1]

    @property
    def ok(self) -> bool:
        return self.latest.ok

    @property
    def verified_at(self) -> datetime:
        return self.latest.at

    @property
    def error(self) -> str | None:
        return self.latest.error

    def with_verdict(self, verdict: Verdict) -> Verification:
        history = (*self.history, verdict)
        if len(history) > HISTORY_LIMIT:
            history = (history[0], *history[len(history) - HISTORY_LIMIT + 1 :])
        return Verification(history)

    def write(self, directory: Path) -> None:
        latest = self.latest
        write_json_atomic(
            directory / VERIFICATION_NAME,
            {
                "format": VERIFICATION_FORMAT,
                # the latest verdict, flat, as format 1 had it (readers of the old format keep working)
                "ok": latest.ok,
                "verified_at": to_iso(latest.at),
                "checks": list(latest.checks),
                "error": latest.error,
                "history": [verdict.to_dict() for verdict in self.history],
            },
        )

    @classmethod
    def read(cls, directory: Path) -> Verification | None:
        """The record, or None when the set was never verified or the record is unreadable (a scrub then says
        so and records a fresh verdict)."""
        try:
            data = read_json(directory / VERIFICATION_NAME)
            if data.get("format", 1) == 1:  # one flat verdict: the backup's own
                at = from_iso(data["verified_at"])
                return cls((Verdict("backup", bool(data["ok"]), at, tuple(data.get("checks", ())), data.get("error")),))
            if data.get("format") != VERIFICATION_FORMAT:
                return None
            history = tuple(Verdict.from_dict(entry) for entry in data["history"])
            return cls(history) if history else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    @classmethod
    def record(cls, directory: Path, verdict: Verdict) -> Verification:
        """Append `verdict` to the set's record and write it back atomically; the caller holds a lock on the set
        (the manifest's shared lock: `files.shared_lock`, and `.record.lock` for the read-modify-write)."""
        with record_lock(directory):
            current = cls.read(directory)
            updated = Verification((verdict,)) if current is None else current.with_verdict(verdict)
            updated.write(directory)
        return updated
