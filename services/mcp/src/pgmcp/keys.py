"""API keys people can manage: the key file's entries, stored as SHA-256 digests with scopes, expiry and
revocation, and a store that reloads the file when it changes (no restart, no call in flight affected).

One entry per line of `MCP_API_KEYS_FILE` (`#` comments and blank lines ignored):

    name:sha256:<64 hex digits> [tools=query,explain] [schemas=a,b] [max_rows=N] [expires=ISO-8601]
                                [created=ISO] [revoked=ISO]

`make api-key NAME=...` writes such a line and prints the key once; only its digest is kept. A key is random
(`pgmcp_` and 43 URL-safe characters: 256 bits), so a plain SHA-256 is the right digest: there is nothing to
guess that a slow hash would protect. A hand-written `name:key` line (the stack's generated default) is still
read, as a key without scopes or expiry.

Revoked keys stay in the file, marked, so that a client presenting one is told it was revoked (and when)
rather than that it is unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from pgmcp.identity import Identity

logger = logging.getLogger(__name__)

KEY_PREFIX = "pgmcp_"
DIGEST_SCHEME = "sha256"
RELOAD_CHECK_S = 1.0
"""How often, at most, a request makes the store look at the file's size and modification time."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MIN_PLAIN_LENGTH = 16
_ATTRIBUTES = ("tools", "schemas", "max_rows", "expires", "created", "revoked")
_SCHEMA = re.compile(r"^[^\x00\s,]{1,63}$")


def digest(secret: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh key: 256 random bits, URL-safe, recognisable by its prefix (for secret scanners)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_moment(text: str) -> datetime:
    """An ISO-8601 instant; a date alone means its midnight UTC; without an offset, UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key of the file: its name, the digest of its secret, and what it may do."""

    name: str
    sha256: str = field(repr=False)
    tools: frozenset[str] | None = None  # None: every tool
    schemas: tuple[str, ...] | None = None  # None: every schema the server shows
    max_rows: int | None = None  # a lower row limit than the server's, or None
    expires: datetime | None = None
    created: datetime | None = None
    revoked: datetime | None = None

    @classmethod
    def from_secret(cls, name: str, secret: str, **attributes: object) -> KeyEntry:
        """The entry of a key whose secret is known (tests, hand-written `name:key` lines)."""
        return cls(name, digest(secret), **attributes)  # type: ignore[arg-type]

    def identity(self) -> Identity:
        """What a request authenticated with this key may do."""
        return Identity(self.name, "key", tools=self.tools, max_rows=self.max_rows, schemas=self.schemas)

    def refusal(self, now: datetime) -> str | None:
        """Why this key is refused now (revoked or expired, with when), or None when it is valid."""
        if self.revoked is not None:
            return f"API key {self.name!r} was revoked at {_iso(self.revoked)}"
        if self.expires is not None and now >= self.expires:
            return f"API key {self.name!r} expired at {_iso(self.expires)}"
        return None

    def line(self) -> str:
        """The entry as the key file holds it."""
        parts = [f"{self.name}:{DIGEST_SCHEME}:{self.sha256}"]
        if self.tools is not None:
            parts.append(f"tools={','.join(sorted(self.tools))}")
        if self.schemas is not None:
            parts.append(f"schemas={','.join(self.schemas)}")
        if self.max_rows is not None:
            parts.append(f"max_rows={self.max_rows}")
        parts += [f"{name}={_iso(value)}" for name, value in self._moments() if value is not None]
        return " ".join(parts)

    def _moments(self) -> tuple[tuple[str, datetime | None], ...]:
        return (("expires", self.expires), ("created", self.created), ("revoked", self.revoked))


def _parse_attributes(
    name: str, number: int, words: Sequence[str], known_tools: frozenset[str] | None, problems: list[str]
) -> dict[str, object]:
    values: dict[str, object] = {}
    for word in words:
        key, separator, value = word.partition("=")
        where = f"line {number} ({name})"
        if not separator or key not in _ATTRIBUTES:
            problems.append(f"{where}: {word!r} is not one of {', '.join(f'{a}=...' for a in _ATTRIBUTES)}")
        elif key in values:
            problems.append(f"{where}: {key} is given twice")
        elif key == "tools":
            tools = frozenset(filter(None, (tool.strip() for tool in value.split(","))))
            unknown = sorted(tools - known_tools) if known_tools is not None else []
            if not tools:
                problems.append(f"{where}: tools= names no tool (leave it out for every tool)")
            elif unknown:
                problems.append(
                    f"{where}: unknown tool {', '.join(unknown)} (tools: {', '.join(sorted(known_tools or ()))})"
                )
            values[key] = tools
        elif key == "schemas":
            schemas = tuple(dict.fromkeys(filter(None, (item.strip() for item in value.split(",")))))
            bad = [item for item in schemas if not _SCHEMA.match(item)]
            if not schemas or bad:
                problems.append(f"{where}: schemas={value!r} is not a comma-separated list of schema names")
            else:
                values[key] = schemas
        elif key == "max_rows":
            if not value.isdigit() or int(value) < 1:
                problems.append(f"{where}: max_rows={value!r} is not a whole number of rows, at least 1")
            else:
                values[key] = int(value)
        else:
            try:
                values[key] = parse_moment(value)
            except ValueError:
                problems.append(f"{where}: {key}={value!r} is not an ISO-8601 date or time (e.g. 2027-01-31)")
    return values


def parse_entries(raw: str, known_tools: frozenset[str] | None = None) -> tuple[KeyEntry, ...]:
    """Every key of a key file's text; ValueError naming each bad line (never a key or a digest)."""
    entries: list[KeyEntry] = []
    problems: list[str] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        head, *words = stripped.split()
        name, _, rest = head.partition(":")
        scheme, _, hexdigest = rest.partition(":")
        if scheme == DIGEST_SCHEME and _HEX_DIGEST.match(hexdigest) and _NAME.match(name):
            attributes = _parse_attributes(name, number, words, known_tools, problems)
            entries.append(KeyEntry(name, hexdigest, **attributes))  # type: ignore[arg-type]
            continue
        # plain `name:key` entries, several to a line when comma-separated (the format before hashed keys)
        for part in filter(None, (item.strip() for item in stripped.split(","))):
            name, separator, secret = part.partition(":")
            name, secret = name.strip(), secret.strip()
            if not separator or not secret:
                problems.append(f"line {number}: an entry is not `name:key` or `name:sha256:<digest>`")
            elif not _NAME.match(name):
                problems.append(f"line {number}: key name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
            elif secret.startswith(f"{DIGEST_SCHEME}:"):
                problems.append(f"line {number} ({name}): the digest is not 64 lowercase hex digits")
            elif any(character.isspace() for character in secret):
                problems.append(f"line {number} ({name}): a plain `name:key` entry takes no attributes")
            elif len(secret) < _MIN_PLAIN_LENGTH:
                problems.append(
                    f"line {number} ({name}): the key is shorter than {_MIN_PLAIN_LENGTH} characters: "
                    "create one with `make api-key NAME=...`"
                )
            else:
                entries.append(KeyEntry(name, digest(secret)))
    names = [entry.name for entry in entries]
    problems += [f"key name {n!r} appears more than once" for n in sorted({n for n in names if names.count(n) > 1})]
    digests = [entry.sha256 for entry in entries]
    if len(set(digests)) != len(digests):
        problems.append("two entries share the same key: give every client its own key")
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class Identified:
    """What a presented key turned out to be: the entry, or None, and why it is refused (None when valid)."""

    entry: KeyEntry | None
    refusal: str | None


def identify(entries: Sequence[KeyEntry], token: str, now: datetime) -> Identified:
    """The entry whose digest matches `token`, compared in constant time with every entry (timing says nothing
    about which one, or whether one, matched), and whether it may be used now."""
    presented = digest(token)
    found: KeyEntry | None = None
    for entry in entries:
        if hmac.compare_digest(presented, entry.sha256):
            found = entry
    if found is None:
        return Identified(None, "unknown API key")
    return Identified(found, found.refusal(now))


class KeyStore:
    """The keys in force. With a `path` (`MCP_API_KEYS_FILE`), the file is read again when its size,
    modification time or inode changes (checked at most every `RELOAD_CHECK_S`, by the request that comes
    then). A file that no longer parses, or holds no key, is refused with an error in the log and the keys
    already loaded stay in force: a half-written file never locks everybody out. Calls in flight keep the
    identity they started with."""

    def __init__(
        self,
        entries: Sequence[KeyEntry] = (),
        *,
        path: Path | None = None,
        known_tools: frozenset[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._known_tools = known_tools
        self._clock = clock
        self._signature: tuple[int, int, int] | None = None
        self._checked = clock()
        self.entries: tuple[KeyEntry, ...] = self._read() if path is not None else tuple(entries)

    def _stat(self) -> tuple[int, int, int]:
        assert self.path is not None
        status = os.stat(self.path)
        return (status.st_ino, status.st_size, status.st_mtime_ns)

    def _read(self) -> tuple[KeyEntry, ...]:
        assert self.path is not None
        self._signature = self._stat()
        entries = parse_entries(self.path.read_text(encoding="utf-8"), self._known_tools)
        if not entries:
            raise ValueError(f"{self.path} holds no key: create one with `make api-key NAME=...`")
        return entries

    def refresh(self) -> bool:
        """Reload when the file changed; True when new keys are in force."""
        now = self._clock()
        if self.path is None or now - self._checked < RELOAD_CHECK_S:
            return False
        self._checked = now
        try:
            if self._stat() == self._signature:
                return False
            entries = self._read()
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            logger.error("the API key file %s was not reloaded, the %d keys loaded before stay: %s",
                         self.path, len(self.entries), exc)  # fmt: skip
            return False
        self.entries = entries
        logger.info("reloaded the API key file %s: %d keys (%s)", self.path, len(entries),
                    ", ".join(entry.name for entry in entries))  # fmt: skip
        return True

    def identify(self, token: str, now: datetime | None = None) -> Identified:
        """`identify` against the keys in force (after looking at the file)."""
        self.refresh()
        return identify(self.entries, token, now or datetime.now(UTC))


# -- the key file, edited by `make api-key`, `make api-keys`, `make api-key-revoke` -------------------------


def create(path: Path, name: str, *, tools: frozenset[str] | None, max_rows: int | None,
           expires: datetime | None, now: datetime, known_tools: frozenset[str] | None = None,
           schemas: tuple[str, ...] | None = None) -> str:  # fmt: skip
    """Add a key named `name` to the file and return its secret (shown once, never stored)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    entries = parse_entries(text, known_tools)
    if any(entry.name == name for entry in entries):
        raise ValueError(f"a key named {name!r} exists: revoke it first, or choose another name")
    if expires is not None and expires <= now:
        raise ValueError(f"expires={_iso(expires)} is not in the future")
    secret = new_secret()
    entry = KeyEntry(name, digest(secret), tools, schemas, max_rows, expires, created=now)
    parse_entries(entry.line(), known_tools)  # the line reads back (a bad name is refused here)
    _write(path, text.rstrip("\n") + ("\n" if text.strip() else "") + entry.line() + "\n")
    return secret


def revoke(path: Path, name: str, *, now: datetime) -> KeyEntry:
    """Mark the key `name` revoked (it stays in the file, so its user is told why it is refused)."""
    text = path.read_text(encoding="utf-8")
    entries = {entry.name: entry for entry in parse_entries(text)}
    if name not in entries:
        raise ValueError(f"no key named {name!r}: `make api-keys` lists them")
    entry = entries[name]
    if entry.revoked is not None:
        raise ValueError(f"the key {name!r} was already revoked at {_iso(entry.revoked)}")
    revoked = replace(entry, revoked=now)
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        head = stripped.split(maxsplit=1)[0] if stripped and not stripped.startswith("#") else ""
        lines.append(revoked.line() if head.partition(":")[0] == name else line)
    _write(path, "\n".join(lines) + "\n")
    return revoked


def _write(path: Path, text: str) -> None:
    """Rewrite the file in place: Compose bind-mounts it into the container by inode, so a rename would leave the
    server reading the old file. One write of a short text; a reader that sees it half-written keeps its keys."""
    with open(path, "r+" if path.exists() else "w", encoding="utf-8") as handle:
        handle.seek(0)
        handle.write(text)
        handle.truncate()
    if os.name == "posix":
        path.chmod(0o600)


def describe(entries: Sequence[KeyEntry], now: datetime) -> list[dict[str, str]]:
    """One row per key for `make api-keys`: name, state, tools, row limit, expiry, creation."""
    rows = []
    for entry in entries:
        state = "revoked" if entry.revoked else "expired" if entry.refusal(now) else "valid"
        rows.append(
            {
                "name": entry.name,
                "state": state,
                "tools": "all" if entry.tools is None else ",".join(sorted(entry.tools)),
                "schemas": "all" if entry.schemas is None else ",".join(entry.schemas),
                "max_rows": "-" if entry.max_rows is None else str(entry.max_rows),
                "expires": "never" if entry.expires is None else _iso(entry.expires),
                "created": "-" if entry.created is None else _iso(entry.created),
            }
        )
    return rows


__all__ = ["KeyEntry", "KeyStore", "create", "describe", "digest", "identify", "parse_entries", "revoke"]
