"""Webhook settings: an http(s) URL, a secret with it, at least 24 h of retries; and the
command line names a bad setting instead of printing a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.cli import main
from server.settings import Settings


def test_webhooks_are_off_by_default() -> None:
    settings = Settings(data_dir=Path("/nonexistent"))
    assert settings.webhook_url is None
    assert settings.webhook_retry_hours == 24


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hooks", "https://host.example/inboxcall"])
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert Settings(webhook_url=url, webhook_secret="s").webhook_url == url


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "host.example/hooks", "http://", "file:///etc/passwd", "javascript:x"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="http:// or https://"):
        Settings(webhook_url=url, webhook_secret="s")


def test_a_url_without_a_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="INBOXCALL_WEBHOOK_SECRET is required"):
        Settings(webhook_url="http://127.0.0.1:9000/hooks")


def test_retries_last_at_least_24_hours() -> None:
    with pytest.raises(ValidationError):
        Settings(webhook_retry_hours=23.9)
    assert Settings(webhook_retry_hours=72).webhook_retry_hours == 72


def test_serve_names_a_bad_setting_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INBOXCALL_WEBHOOK_URL", "ftp://host/hooks")
    monkeypatch.setenv("INBOXCALL_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("INBOXCALL_PORT", "not-a-port")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "inboxcall: bad setting: INBOXCALL_WEBHOOK_URL:" in err
    assert "inboxcall: bad setting: INBOXCALL_PORT:" in err
    assert "Traceback" not in err


def test_a_missing_secret_is_named_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INBOXCALL_WEBHOOK_URL", "https://host.example/hooks")
    monkeypatch.delenv("INBOXCALL_WEBHOOK_SECRET", raising=False)
    assert main(["migrate"]) == 2
    assert "INBOXCALL_WEBHOOK_SECRET is required" in capsys.readouterr().err
