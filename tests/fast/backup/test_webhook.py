"""BACKUP_WEBHOOK_URL: a JSON POST on failure; a dead webhook is logged, never raised, and its URL
(which may carry a token) never appears in the log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from devtools.net import free_port
from pgbackup.config import Settings
from pgbackup.webhook import notify_failure
from tests.fast.backup.helpers import WebhookReceiver


def test_posts_the_event(webhook: WebhookReceiver, tmp_path: Path) -> None:
    settings = Settings.from_env({"BACKUP_DIR": str(tmp_path), "BACKUP_WEBHOOK_URL": webhook.url})
    assert notify_failure(settings, {"event": "backup_failed", "error": "disk full"}) is True
    [event] = webhook.events
    assert event["source"] == "pgbackup" and event["event"] == "backup_failed" and event["error"] == "disk full"
    assert event["host"]


def test_a_dead_webhook_is_a_warning_without_the_url(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook?token=s3cr3t-token"
    settings = Settings.from_env(
        {"BACKUP_DIR": str(tmp_path), "BACKUP_WEBHOOK_URL": url, "BACKUP_WEBHOOK_TIMEOUT": "2s"}
    )
    with caplog.at_level(logging.WARNING, logger="pgbackup"):
        assert notify_failure(settings, {"event": "backup_failed"}) is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "webhook to host=127.0.0.1 failed" in record.getMessage()
    assert "s3cr3t-token" not in caplog.text


def test_no_url_no_post(tmp_path: Path) -> None:
    assert notify_failure(Settings.from_env({"BACKUP_DIR": str(tmp_path)}), {"event": "backup_failed"}) is False
