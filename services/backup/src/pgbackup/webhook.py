"""BACKUP_WEBHOOK_URL: one JSON POST when a backup fails. Best effort: a webhook that is down is logged
and never turns into a second failure. The URL is never logged (it often carries a token)."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from pgbackup import __version__
from pgbackup.config import Settings

logger = logging.getLogger(__name__)


def notify_failure(settings: Settings, event: dict[str, Any]) -> bool:
    """POST `event` (plus the host name) to the webhook; True when it answered 2xx. No URL: nothing."""
    if not settings.webhook_url:
        return False
    body = json.dumps({"source": "pgbackup", "host": socket.gethostname(), **event}).encode()
    request = urllib.request.Request(
        settings.webhook_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"pgbackup/{__version__}"},
    )
    target = urlsplit(settings.webhook_url).hostname
    try:
        with urllib.request.urlopen(
            request, timeout=settings.webhook_timeout
        ) as response:  # http(s) only: checked in config
            status = int(response.status)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        logger.warning("webhook to host=%s failed: %s", target, getattr(exc, "reason", exc))
        return False
    logger.info("webhook sent host=%s status=%d", target, status)
    return 200 <= status < 300
