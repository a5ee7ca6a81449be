"""Tables. Ids from the host marketplace are its own strings; ids we mint are random."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from server.clock import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use server.clock.utcnow()")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def new_id() -> str:
    return secrets.token_hex(12)


def unguessable_id() -> str:
    return secrets.token_urlsafe(24)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(200))
    business_program: Mapped[str] = mapped_column(String(16), default="none")
    vid: Mapped[bool] = mapped_column(Boolean, default=False)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Thread(Base):
    __tablename__ = "threads"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seller_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    subject: Mapped[str] = mapped_column(String(200), default="")
    initiated_by: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="open")
    order_placed: Mapped[bool] = mapped_column(Boolean, default=False)
    last_buyer_activity_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id"))
    # None for system messages (missed call, call ended...).
    sender_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="text")  # text | system | call_chat
    text: Mapped[str] = mapped_column(Text)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # A contact detail split across messages: the earlier messages (ids, oldest first)
    # that this one completes it with. None when it joins none.
    joins_message_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_messages_thread_created", "thread_id", "created_at"),)


class Block(Base):
    __tablename__ = "blocks"
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    seller_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ThreadRead(Base):
    """How far a person has read a thread: messages after ``read_at`` are unread."""

    __tablename__ = "thread_reads"
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    read_at: Mapped[datetime] = mapped_column()


class LoginToken(Base):
    __tablename__ = "login_tokens"
    # Only a hash is stored: a database leak does not hand out sign-ins.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)


class UserSession(Base):
    """A signed-in browser. The cookie carries a random secret; only its hash is stored,
    so a database leak does not hand out sessions. Ending a session (sign-out, a sign-in
    as someone else, expiry) is a row change here: the cookie stops working at once."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Call(Base):
    __tablename__ = "calls"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id"), index=True)
    seller_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="ringing", index=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    end_detail: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    connected_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Zero of the recordings' shared clock: where the reviewer's timeline starts.
    recording_started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Connected time, from active to end without the reconnect grace
    # (signaling.call_duration); None if the call never became active.
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    seller_consent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    buyer_consent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    contact_details_detected: Mapped[bool] = mapped_column(Boolean, default=False)
    reported: Mapped[bool] = mapped_column(Boolean, default=False)
    # Review sampling decision and its inputs (DESIGN.md section 6).
    review_required: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    sample_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    sample_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sample_draw: Mapped[float | None] = mapped_column(Float, nullable=True)
    sampled: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    mandatory_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The node that runs the live call, and the fencing epoch of its ownership: every
    # change the owner stores checks both, so a node that lost the call (declared dead
    # while paused) can no longer act on it.
    owner_node: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    owner_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Node(Base):
    """A serving node of the cluster and its last heartbeat (the liveness truth)."""

    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CallEvent(Base):
    __tablename__ = "call_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CallReport(Base):
    __tablename__ = "call_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    reporter_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recording(Base):
    __tablename__ = "recordings"
    # Unguessable: it appears in replay URLs.
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=unguessable_id)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    storage_key: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(16), default="recording", index=True)
    # recording | finalised | interrupted | deleted (tombstone: bytes gone, row kept)
    mime_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    video_codec: Mapped[str | None] = mapped_column(String(16), nullable=True)
    audio_codec: Mapped[str | None] = mapped_column(String(16), nullable=True)
    start_offset: Mapped[float] = mapped_column(Float, default=0.0)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    video_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    audio_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hold: Mapped[str] = mapped_column(String(16), default="none")  # none | violation | released
    hold_released_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finalised_at: Mapped[datetime | None] = mapped_column(nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    deleted_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    __table_args__ = (UniqueConstraint("call_id", "participant_id"),)


class Review(Base):
    __tablename__ = "reviews"
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), primary_key=True)
    reviewer_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(32), nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    verdict_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Bumped by every ORM update, which is conditional on it: a claim or verdict decided on
    # a state that changed meanwhile fails (StaleDataError) instead of overwriting it.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    __mapper_args__ = {"version_id_col": version}


class Violation(Base):
    __tablename__ = "violations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"))
    verdict: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # One violation per call and subject, whatever races the verdict.
    __table_args__ = (UniqueConstraint("call_id", "user_id", name="uq_violations_call_user"),)


class RuntimeSetting(Base):
    """Operator-changed policy (sampling rate, retention); every change is audited."""

    __tablename__ = "runtime_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """Append-only: the migration installs triggers that refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    action: Mapped[str] = mapped_column(String(48), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(128), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WebhookEvent(Base):
    """The webhook outbox: one row per event for the host marketplace, written in the
    transaction of the change it describes and delivered at least once by
    ``server.webhooks.sender`` (server/webhooks/__init__.py says how)."""

    __tablename__ = "webhook_outbox"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(48), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The exact JSON sent on every attempt: its id and content never change across retries.
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Retries go on for the retry window from here: creation, or an operator's re-drive.
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A sender holds a row while it delivers it; another node skips it until the lease ends.
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    __table_args__ = (Index("ix_webhook_outbox_due", "state", "next_attempt_at"),)
