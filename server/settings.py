"""Service configuration, read from ``INBOXCALL_*`` environment variables.

Every setting is documented in README.md; keep the two in step.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INBOXCALL_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("./data")
    database_url: str | None = None
    recordings_dir: Path | None = None
    # Left empty, a random key is made at start: sessions and join links then do not
    # survive a restart, which is right for a demo and wrong for production.
    secret_key: SecretStr = SecretStr("")
    integration_api_key: SecretStr = SecretStr("")
    public_url: str | None = None
    # Comma-separated addresses the media ports offer as ICE host candidates; empty means
    # every interface. Loopback by default, like INBOXCALL_HOST.
    ice_host_addresses: str = "127.0.0.1"
    demo: bool = False

    # unset: one node, in-process bus. Set (redis://host:port/db): join the cluster.
    redis_url: str | None = None
    # This node's id in the cluster; unset: made once and kept in the data dir.
    node_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    # Media worker processes of this node; unset: one per CPU. 0 carries media in the
    # serving process itself: for tests that look inside the bridge, and for debugging.
    media_workers: int | None = Field(default=None, ge=0, le=256)
    # SO_RCVBUF asked for every media socket (the kernel caps it at net.core.rmem_max).
    media_udp_receive_buffer_bytes: int = Field(default=2 * 1024 * 1024, ge=65536)
    # What each media leg may send (audio and video): advertised to browsers (b=AS, REMB)
    # and policed (frames beyond it dropped, a leg that keeps above it ends the call).
    max_leg_bitrate_kbps: int = Field(default=2500, ge=256, le=100_000)

    eligibility_activity_window_days: int = Field(default=14, ge=1, le=3650)
    call_attempt_limit: int = Field(default=5, ge=1, le=1000)
    call_attempt_window_minutes: int = Field(default=60, ge=1, le=10080)
    ring_timeout_seconds: float = Field(default=45.0, gt=0, le=600)
    reconnect_grace_seconds: float = Field(default=20.0, gt=0, le=600)
    connect_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # A call ends (``max_length``) this long after it became active, both people warned a
    # minute before; fractions of a minute are for tests.
    max_call_minutes: float = Field(default=120.0, gt=0, le=24 * 60)
    join_link_ttl_seconds: int = Field(default=600, ge=10, le=86400)
    login_token_ttl_seconds: int = Field(default=120, ge=10, le=3600)
    session_max_age_seconds: int = Field(default=12 * 3600, ge=60)

    review_sample_rate: float = Field(default=0.10, ge=0.0, le=1.0)
    review_sample_key_id: str = "k1"
    review_claim_minutes: int = Field(default=30, ge=1, le=1440)
    retention_days: int = Field(default=30, ge=1, le=3650)
    reviewed_clean_retention_days: int = Field(default=30, ge=1, le=3650)
    purge_interval_seconds: float = Field(default=3600.0, gt=0)

    # A failed recording upload is retried after this, doubling up to the maximum.
    upload_retry_initial_seconds: float = Field(default=5.0, gt=0, le=3600)
    upload_retry_max_seconds: float = Field(default=600.0, gt=0, le=86400)

    storage_backend: str = Field(default="local", pattern="^(local|s3)$")
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"

    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)
    message_max_chars: int = Field(default=2000, ge=1, le=20000)

    # Prometheus text at /metrics on a port of its own, never the public one. Off (0) by
    # default: several nodes may share a machine, and each must be given its own port.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    log_format: Literal["text", "json"] = "text"
    # Names this process in every log line (``node``); unset: the cluster node id (see
    # ``node_id``), so that nodes sharing a machine tell their lines apart.
    node_name: str | None = Field(default=None, min_length=1, max_length=128)
    # Bounded connections (server/connection_limits.py). Small values are for tests.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    http_body_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    http_idle_timeout_seconds: float = Field(default=75.0, gt=0, le=3600)
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)

    # Per-user throttle of HTTP writes people make (server/write_throttle.py): each kind
    # (messages, reports) has its own bucket of ``burst`` that refills at ``per minute``.
    message_rate_per_minute: float = Field(default=30.0, gt=0, le=60_000)
    message_rate_burst: int = Field(default=10, ge=1, le=10_000)
    report_rate_per_minute: float = Field(default=3.0, gt=0, le=60_000)
    report_rate_burst: int = Field(default=5, ge=1, le=10_000)
    # Webhooks to the host marketplace (DESIGN.md section 8, "Operations"). Unset URL: no
    # events are written nor sent.
    webhook_url: str | None = None
    webhook_secret: SecretStr = SecretStr("")
    # Retries go on this long after an event was written (or re-driven), then it is failed
    # and waits for an operator. The contract asks for at least 24 h.
    webhook_retry_hours: float = Field(default=24.0, ge=24.0, le=24.0 * 30)
    # First retry delay; each further one doubles (jittered), up to an hour.
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0, le=3600)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # How often the sender looks for due events when it has nothing to do.
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("INBOXCALL_WEBHOOK_URL must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _fill_secrets(self) -> Settings:
        if not self.secret_key.get_secret_value():
            self.secret_key = SecretStr(secrets.token_urlsafe(32))
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError(
                f"INBOXCALL_METRICS_PORT ({self.metrics_port}) must differ from INBOXCALL_PORT:"
                " metrics are never served on the public port"
            )
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            # Unsigned events could be forged by anyone who can reach the host's endpoint.
            raise ValueError("INBOXCALL_WEBHOOK_SECRET is required with INBOXCALL_WEBHOOK_URL")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept plain PostgreSQL URLs and pick the async driver ourselves.
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    return "postgresql+asyncpg://" + url[len(prefix) :]
            if url.startswith("sqlite:///"):
                return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'inboxcall.sqlite3').resolve()}"

    @property
    def resolved_node_name(self) -> str:
        if self.node_name:
            return self.node_name
        from server.cluster.node import resolve_node_id

        return resolve_node_id(self.node_id, self.data_dir)

    @property
    def resolved_media_workers(self) -> int:
        if self.media_workers is not None:
            return self.media_workers
        return max(1, os.cpu_count() or 1)

    @property
    def recording_staging_dir(self) -> Path:
        return (self.data_dir / "recording-staging").resolve()

    @property
    def ice_host_address_list(self) -> list[str]:
        return [a.strip() for a in self.ice_host_addresses.split(",") if a.strip()]

    @property
    def resolved_recordings_dir(self) -> Path:
        return (self.recordings_dir or self.data_dir / "recordings").resolve()

    def base_url(self, fallback: str) -> str:
        return (self.public_url or fallback).rstrip("/")
