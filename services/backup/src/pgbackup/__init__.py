"""pgbackup: scheduled, verified pg_dump backups of PostgreSQL, with restore and restore drills.

Run it as `python -m pgbackup <command>`; `python -m pgbackup --help` lists the commands.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
