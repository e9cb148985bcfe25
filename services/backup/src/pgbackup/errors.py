"""The error hierarchy of pgbackup and the stable exit status of every CLI outcome, in one place.

Each failure a command can end with has one class here and one exit status. Scripts, the Makefile and
the container health check rely on these numbers: never renumber them, only add. (They were renumbered
once, to share 0-5 and 70 with pgmcp: docs/conventions.md.)
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses of `python -m pgbackup <command>`: 0 to 5 and 70 mean what they mean for pgmcp,
    10 and up are this CLI's own (docs/conventions.md; a test checks that table against this one)."""

    OK = 0
    UNHEALTHY = 1  # healthcheck only: Docker reads any non-zero as unhealthy and reserves 2
    USAGE = 2  # argparse: unknown command or option; an argument that does not fit (restore --source-db)
    CONFIG = 3  # invalid settings, unknown BACKUP_* variables included (every problem is listed)
    STARTUP = 4  # a startup check failed: directory, free space, tool versions, privileges
    UNREACHABLE = 5  # the source server did not accept a connection (within BACKUP_CONNECT_RETRY, or refused it)
    BACKUP = 10  # a backup run failed
    VERIFY = 11  # a set failed verification: checksum, archive list, row counts, roles
    NOT_FOUND = 12  # no such set, or no verified set
    TARGET_EXISTS = 13  # restore refused: the target database exists and --force was not given
    RESTORE = 14  # restore failed
    RETENTION = 15  # retention refused to run (it would delete every set)
    LOCKED = 16  # another backup or prune holds the backup directory's lock
    ABORTED = 17  # stopped by SIGTERM or SIGINT; partial files were removed
    THRESHOLD = 18  # drill verified the set, but RTO or RPO is over its limit
    OFFSITE = 19  # the offsite target failed: unreachable, refused, or a copy is missing or incomplete there
    WRONG_KEY = 20  # the age key given does not decrypt the offsite copy (the copies are left as they were)
    INTERNAL = 70  # a bug: an unexpected exception (EX_SOFTWARE)


class BackupError(Exception):
    """Base class of every error pgbackup reports to its user; carries the exit status."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *hints: str) -> None:
        super().__init__(message)
        self.message = message
        self.hints = hints

    def __str__(self) -> str:
        return "\n".join([self.message, *(f"hint: {hint}" for hint in self.hints)])


class ConfigError(BackupError):
    """One or more settings are invalid; `problems` lists every one of them."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str]) -> None:
        items = "\n".join("  - " + problem.replace("\n", "\n    ") for problem in problems)
        super().__init__(f"invalid configuration:\n{items}")
        self.problems = problems


class StartupCheckError(BackupError):
    """A check before backing up failed (directory, free space, tool version, connection, privileges)."""

    exit_code = ExitCode.STARTUP


class UnreachableError(BackupError):
    """The source server did not accept a connection: unreachable until the retry deadline, or refused for a
    reason retrying cannot fix (`permanent`: a certificate, TLS, the password, pg_hba.conf, a missing database
    or role). `kind` names the cause (pgbackup.failures)."""

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, message: str, *hints: str, kind: str = "unknown", permanent: bool = False) -> None:
        super().__init__(message, *hints)
        self.kind = kind
        self.permanent = permanent


class DumpError(BackupError):
    """Taking a backup set failed; no set was made visible."""

    exit_code = ExitCode.BACKUP


class VerificationError(BackupError):
    """A set does not match its manifest (checksums, archive contents, row counts, roles, sanity)."""

    exit_code = ExitCode.VERIFY


class SetNotFoundError(BackupError):
    """The requested backup set does not exist, or no verified set exists yet."""

    exit_code = ExitCode.NOT_FOUND


class TargetExistsError(BackupError):
    """Restore refused to touch an existing database without --force."""

    exit_code = ExitCode.TARGET_EXISTS


class UsageError(BackupError):
    """A command's arguments do not fit: one is missing, or names what the backup set does not hold."""

    exit_code = ExitCode.USAGE


class RestoreError(BackupError):
    """Restoring a set failed; the target database was left as it was."""

    exit_code = ExitCode.RESTORE


class RetentionRefusedError(BackupError):
    """Retention would delete every set (or the newest verified one) and refused to run."""

    exit_code = ExitCode.RETENTION


class LockedError(BackupError):
    """Another process holds the backup directory's lock: runs never overlap."""

    exit_code = ExitCode.LOCKED


class AbortedError(BackupError):
    """The run was stopped by a signal; its partial files were removed."""

    exit_code = ExitCode.ABORTED


class ThresholdError(BackupError):
    """The drill passed verification but its RTO or RPO is over the configured limit."""

    exit_code = ExitCode.THRESHOLD


class ToolError(BackupError):
    """A PostgreSQL client tool (pg_dump, pg_restore, psql, initdb, pg_ctl) failed or is missing."""

    exit_code = ExitCode.BACKUP


class OffsiteError(BackupError):
    """The offsite target failed (unreachable, refused, no such copy) or a copy there is incomplete."""

    exit_code = ExitCode.OFFSITE


class WrongKeyError(BackupError):
    """The age identity given is not one of the recipients an offsite copy was encrypted to."""

    exit_code = ExitCode.WRONG_KEY


__all__ = [
    "AbortedError",
    "BackupError",
    "ConfigError",
    "DumpError",
    "ExitCode",
    "LockedError",
    "OffsiteError",
    "RestoreError",
    "RetentionRefusedError",
    "SetNotFoundError",
    "StartupCheckError",
    "TargetExistsError",
    "ThresholdError",
    "ToolError",
    "UnreachableError",
    "UsageError",
    "VerificationError",
    "WrongKeyError",
]
