"""Service configuration, read from ``INBOXCALL_*`` environment variables.

Every setting is documented in README.md; keep the two in step.
"""

from __future__ import annotations

import os
import secrets
from ipaddress import ip_address
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signaling.media_bandwidth import BandwidthSettings


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
    # Comma-separated public addresses announced in place of the host addresses, one per
    # host address in the same order (a 1:1 NAT: bind the private one, announce this).
    # Empty: announce the bound addresses.
    ice_announced_addresses: str = ""
    # The UDP ports media sockets bind (both or neither), split between the workers.
    media_port_min: int | None = Field(default=None, ge=1, le=65535)
    media_port_max: int | None = Field(default=None, ge=1, le=65535)
    # TURN for browsers (DESIGN.md section 8, "TURN"): comma-separated turn:/turns: URLs,
    # coturn's static-auth-secret, and the lifetime of the credentials minted from it.
    turn_urls: str = ""
    turn_secret: SecretStr = SecretStr("")
    turn_credential_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 86400)
    demo: bool = False

    # unset: one node, in-process bus. Set (redis://host:port/db): join the cluster.
    redis_url: str | None = None
    # This node's id in the cluster; unset: made once and kept in the data dir.
    node_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    # Media worker processes of this node; unset: one per CPU. 0 carries media in the
    # serving process itself: for tests that look inside the bridge, and for debugging.
    media_workers: int | None = Field(default=None, ge=0, le=256)
    # Calls one media worker takes at most (0: no cap). Measured on a 2-core machine: one
    # worker carries 12 recorded 640x480 calls with every frame delivered, and at 20 it
    # fell behind and lost all of them; past the cap a new call answers "unavailable".
    media_max_calls_per_worker: int = Field(default=12, ge=0, le=10_000)
    # SO_RCVBUF asked for every media socket (the kernel caps it at net.core.rmem_max).
    media_udp_receive_buffer_bytes: int = Field(default=2 * 1024 * 1024, ge=65536)
    # Below this much free space in <data dir>/recording-staging the node takes no new
    # calls (/readyz 503): room for the live calls to finish and be finalised, which copies
    # each file once more. 2 GiB is about 4 h of one call's two sides at 1 Mbit/s each.
    # 0: no floor.
    staging_min_free_bytes: int = Field(default=2 * 1024**3, ge=0)
    # Media bytes one call may write to staging (both participants); past it the recording
    # stops and the call ends failed/recording_failed. Unset: what the longest call can
    # legitimately write (see resolved_staging_bytes_per_call).
    staging_bytes_per_call: int | None = Field(default=None, ge=64 * 1024)
    # What each media leg may send (audio and video): advertised to browsers (b=AS, REMB)
    # and policed (frames beyond it dropped, a leg that keeps above it ends the call).
    max_leg_bitrate_kbps: int = Field(default=2500, ge=256, le=100_000)
    # The receiver's network decides what the sender sends (REMB relayed, video paused when
    # it cannot get through). Off only to measure what it buys (bench/bench_browser_bitrate.py).
    receiver_driven_bitrate: bool = True

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
        self._check_media_network()
        if self.turn_url_list and not self.turn_secret.get_secret_value():
            raise ValueError("INBOXCALL_TURN_SECRET is required with INBOXCALL_TURN_URLS")
        for url in self.turn_url_list:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"INBOXCALL_TURN_URLS: {url!r} is not a turn: or turns: URL")
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            # Unsigned events could be forged by anyone who can reach the host's endpoint.
            raise ValueError("INBOXCALL_WEBHOOK_SECRET is required with INBOXCALL_WEBHOOK_URL")
        return self

    def _check_media_network(self) -> None:
        if (self.media_port_min is None) != (self.media_port_max is None):
            raise ValueError(
                "set both INBOXCALL_MEDIA_PORT_MIN and INBOXCALL_MEDIA_PORT_MAX, or neither"
            )
        if self.media_port_range is not None:
            low, high = self.media_port_range
            if low > high:
                raise ValueError("INBOXCALL_MEDIA_PORT_MIN is above INBOXCALL_MEDIA_PORT_MAX")
            # Each worker gets its own slice of the range (server/media/worker_pool.py).
            slices = max(1, self.resolved_media_workers)
            if high - low + 1 < slices:
                raise ValueError(
                    f"INBOXCALL_MEDIA_PORT_MIN..MAX ({low}-{high}) must hold at least one port"
                    f" per media worker ({slices})"
                )
        announced = self.ice_announced_address_list
        if announced:
            hosts = self.ice_host_address_list
            if len(announced) != len(hosts):
                raise ValueError(
                    "INBOXCALL_ICE_ANNOUNCED_ADDRESSES needs one address per"
                    f" INBOXCALL_ICE_HOST_ADDRESSES address ({len(hosts)}), in the same order"
                )
            for bound, public in zip(hosts, announced, strict=True):
                try:
                    same = ip_address(bound).version == ip_address(public).version
                except ValueError:
                    raise ValueError(
                        f"ICE addresses must be IP addresses: {bound!r} / {public!r}"
                    ) from None
                if not same:
                    raise ValueError(f"{public} is announced for {bound}: not the same IP version")

    @property
    def media_port_range(self) -> tuple[int, int] | None:
        if self.media_port_min is None or self.media_port_max is None:
            return None
        return (self.media_port_min, self.media_port_max)

    @property
    def ice_announced_address_list(self) -> list[str]:
        return [a.strip() for a in self.ice_announced_addresses.split(",") if a.strip()]

    @property
    def announced_address_map(self) -> dict[str, str]:
        """Bound address -> the address announced for it (empty: announce what is bound)."""
        announced = self.ice_announced_address_list
        return dict(zip(self.ice_host_address_list, announced, strict=True)) if announced else {}

    @property
    def turn_url_list(self) -> list[str]:
        return [u.strip() for u in self.turn_urls.split(",") if u.strip()]

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
    def resolved_staging_bytes_per_call(self) -> int:
        """The staging budget of one call: unset, both legs at the bitrate ceiling with the
        police's 1.5x tolerance (signaling.media_bandwidth) for the maximum call length --
        6.75 GB with the defaults (2500 kbit/s, 120 min). A legitimate call never reaches it;
        a client flooding past the police cannot fill the disk."""
        if self.staging_bytes_per_call is not None:
            return self.staging_bytes_per_call
        legs = 2
        bits = legs * self.max_leg_bitrate_kbps * 1000 * BandwidthSettings().police_tolerance
        return int(bits * self.max_call_minutes * 60 / 8)

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
