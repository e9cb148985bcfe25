"""The BACKUP_* environment that points pgbackup at a native server: what the backup tests and `make bench-backup`
share. Callers add their own settings as keyword overrides."""

from __future__ import annotations

import os
from pathlib import Path

from devtools.native_pg import BIN_DIR, SERVICE_USER, NativePostgres


def backup_environment(
    server: NativePostgres, backup_dir: Path, role: str = "backup_operator", **overrides: str
) -> dict[str, str]:
    """BACKUP_* settings for `server` as `role`, writing to `backup_dir`; keyword overrides win."""
    env = {
        "BACKUP_PGHOST": server.host,
        "BACKUP_PGPORT": str(server.port),
        "BACKUP_PGUSER": role,
        "BACKUP_PGPASSWORD": server.passwords[role],
        "BACKUP_DIR": str(backup_dir),
        "BACKUP_DATABASES": "app",
        "BACKUP_PG_BIN_DIR": str(BIN_DIR),
        "BACKUP_MIN_FREE_BYTES": "1MiB",
    }
    if os.geteuid() == 0:  # PostgreSQL refuses root: the drill's server runs as the fixture's user
        env["BACKUP_DRILL_USER"] = SERVICE_USER
    env.update(overrides)
    return env
