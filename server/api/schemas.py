"""Request and response bodies of the HTTP API; the OpenAPI document is built from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from server import policy
from server.review.lifecycle import Verdict

# Review policy lives outside the HTTP layer (the retention job and the call code use it);
# named here too because the API's bodies are built from it.
PolicySettings = policy.PolicySettings


def _iso_8601_text(value: object) -> object:
    # JSON carries timestamps as ISO-8601 text; a bare number is a mistake, not epoch seconds.
    if value is not None and not isinstance(value, str):
        raise ValueError("expected an ISO-8601 timestamp with a time zone")
    return value


IsoTimestamp = Annotated[AwareDatetime, BeforeValidator(_iso_8601_text)]

HostId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")
]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
MessageText = Annotated[
    str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)
]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


# ---- users and threads (integration API) ----


class UserUpsert(StrictBody):
    role: Literal["seller", "buyer", "reviewer", "admin"]
    display_name: DisplayName
    business_program: Literal["none", "invited", "member", "suspended"] = "none"
    vid: bool = False
    restricted: bool = False


class UserOut(BaseModel):
    id: str
    role: str
    display_name: str
    business_program: str
    vid: bool
    restricted: bool


class ThreadUpsert(BaseModel):
    # Not strict: the ISO-8601 timestamp arrives as a JSON string.
    model_config = ConfigDict(extra="forbid")
    seller_id: HostId
    buyer_id: HostId
    subject: Annotated[str, StringConstraints(max_length=200)] = ""
    initiated_by: Literal["buyer", "seller"]
    state: Literal["open", "archived", "blocked", "closed"] = "open"
    order_placed: Annotated[bool, Field(strict=True)] = False
    last_buyer_activity_at: IsoTimestamp | None = None


class MessageIn(StrictBody):
    text: MessageText


class IntegrationMessageIn(StrictBody):
    sender_id: HostId
    text: MessageText


def _nullable_models(schema: dict[str, Any]) -> None:
    """Write an optional nested model (``Model | None``) the OpenAPI 3.0 way, ``allOf`` +
    ``nullable``: aiohttp-pydantic's 3.0 conversion reads ``type`` on every ``anyOf`` member,
    and a ``$ref`` has none (it raised KeyError building the document)."""
    for prop in schema.get("properties", {}).values():
        members = prop.get("anyOf")
        if members and len(members) == 2 and {"type": "null"} in members:
            refs = [m for m in members if "$ref" in m]
            if refs:
                del prop["anyOf"]
                prop["allOf"] = refs
                prop["nullable"] = True


NULLABLE_MODELS = ConfigDict(json_schema_extra=_nullable_models)


class MessageCall(BaseModel):
    """The call a system message is about, as the reader may see it.

    ``kind`` ``invite`` is the join link left for an offline buyer (``join_url`` is set
    for the buyer only, and only while the call can still be joined); ``outcome`` is the
    note a call leaves when it ends.
    """

    id: str
    kind: Literal["invite", "outcome"]
    state: str
    end_reason: str | None
    ended_by: str | None
    duration_seconds: float | None
    join_url: str | None = None


class MessageOut(BaseModel):
    model_config = NULLABLE_MODELS
    id: str
    thread_id: str
    sender_id: str | None
    kind: str
    text: str
    flags: list[str]
    # With "contact_details" in flags for a detail split across messages: the earlier
    # messages of the same sender it joins, oldest first.
    joins: list[str] = []
    call_id: str | None
    created_at: datetime
    call: MessageCall | None = None


class ThreadSummary(BaseModel):
    id: str
    subject: str
    seller: UserOut
    buyer: UserOut
    initiated_by: str
    state: str
    order_placed: bool
    last_buyer_activity_at: datetime | None
    blocked_by_buyer: bool


class ThreadDetail(ThreadSummary):
    messages: list[MessageOut]


class InboxThread(ThreadSummary):
    """A line of the signed-in person's inbox."""

    model_config = NULLABLE_MODELS
    last_message: MessageOut | None
    last_activity_at: datetime | None
    unread_count: int


class ThreadList(BaseModel):
    """Latest activity first."""

    threads: list[InboxThread]


class ReadMarkOut(BaseModel):
    thread_id: str
    read_at: datetime


class ThreadOut(BaseModel):
    id: str
    seller_id: str
    buyer_id: str
    subject: str
    initiated_by: str
    state: str
    order_placed: bool
    last_buyer_activity_at: datetime | None


class ReasonOut(BaseModel):
    code: str
    message: str


class EligibilityOut(BaseModel):
    allowed: bool
    reasons: list[ReasonOut]


class BlockOut(BaseModel):
    buyer_id: str
    seller_id: str
    blocked: bool


class LoginTokenOut(BaseModel):
    token: str
    login_url: str


class Me(BaseModel):
    user: UserOut
    csrf_token: str


class ViolationOut(BaseModel):
    call_id: str
    verdict: str
    created_at: datetime
    released_at: datetime | None


class ViolationList(BaseModel):
    user_id: str
    violations: list[ViolationOut]


class MediaWorkerStatus(BaseModel):
    index: int
    pid: int | None
    ready: bool
    calls: int
    # From the worker's last load report (once a second): its CPU time since it started,
    # and how late its event loop woke a sleeper, p99 over its last minute.
    cpu_seconds: float = 0.0
    loop_lag_p99_ms: float = 0.0


class MediaStatus(BaseModel):
    # "workers"; "in_process" with media workers switched off; "none" where no media runs
    mode: str = "none"
    calls: int = 0
    workers: list[MediaWorkerStatus] = []


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
    media: MediaStatus = MediaStatus()
    node: str = ""
    # "ok", or "unreachable" while Redis is down (new calls wait; live calls go on)
    bus: str = "ok"


# ---- compliance review ----


class QueueItem(BaseModel):
    call_id: str
    thread_id: str
    seller: UserOut
    buyer: UserOut
    created_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    end_reason: str | None
    mandatory: bool
    mandatory_reasons: list[str]
    sampled: bool | None
    claimed_by: str | None
    claim_expires_at: datetime | None
    verdict: str | None


class QueueOut(BaseModel):
    calls: list[QueueItem]


class RecordingOut(BaseModel):
    id: str
    participant_id: str
    state: str
    mime_type: str | None
    video_codec: str | None
    audio_codec: str | None
    start_offset: float
    duration: float | None
    size: int | None
    sha256: str | None
    hold: str
    deleted_reason: str | None


class EventOut(BaseModel):
    kind: str
    user_id: str | None
    at: datetime
    offset: float | None
    data: dict[str, object]


class ContactSpan(BaseModel):
    kind: str
    start: int
    end: int


class TranscriptLine(BaseModel):
    id: str
    sender_id: str | None
    text: str
    flags: list[str]
    hits: list[ContactSpan]
    created_at: datetime
    offset: float | None


class ReportOut(BaseModel):
    reporter_id: str
    reason: str
    created_at: datetime


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor_id: str | None
    action: str
    target_type: str
    target_id: str
    details: dict[str, object]


class ReviewState(BaseModel):
    claimed_by: str | None
    claim_expires_at: datetime | None
    verdict: str | None
    notes: str
    verdict_at: datetime | None


class SamplingOut(BaseModel):
    rate: float | None
    key_id: str | None
    draw: float | None
    sampled: bool | None
    mandatory_reasons: list[str]


class ReviewCallDetail(BaseModel):
    call_id: str
    thread_id: str
    seller: UserOut
    buyer: UserOut
    state: str
    end_reason: str | None
    ended_by: str | None
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    interrupted: bool
    recording_started_at: datetime | None
    sampling: SamplingOut
    recordings: list[RecordingOut]
    events: list[EventOut]
    transcript: list[TranscriptLine]
    reports: list[ReportOut]
    review: ReviewState
    audit: list[AuditOut]


class ReplayGrant(BaseModel):
    recording_id: str
    media_url: str
    mime_type: str | None
    expires_in: int


class VerdictIn(StrictBody):
    verdict: Verdict
    notes: Annotated[str, StringConstraints(max_length=5000)] = ""
    # Who broke the rules; required for a violation verdict.
    subject_user_id: HostId | None = None


class ReasonIn(StrictBody):
    reason: Annotated[str, StringConstraints(min_length=3, max_length=500, strip_whitespace=True)]


class AuditList(BaseModel):
    entries: list[AuditOut]


class PolicySettingsIn(StrictBody):
    review_sample_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    retention_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    reviewed_clean_retention_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class PurgeOut(BaseModel):
    deleted: list[str]


# ---- calls (server/api/calls.py) ----


class CallParty(BaseModel):
    id: str
    display_name: str


class CallOut(BaseModel):
    """A call as its join link or a participant sees it; ``state`` ``ended`` once over."""

    id: str
    thread_id: str
    state: Literal["ringing", "connecting", "active", "ended"]
    end_reason: str | None
    ended_by: str | None
    end_detail: str | None
    caller: CallParty
    buyer: CallParty
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    recording_notice: str


class CallReportIn(StrictBody):
    reason: Literal["off_platform_contact", "harassment", "inappropriate_content", "scam", "other"]
    details: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
        | None
    ) = None


class CallReportOut(BaseModel):
    id: int
    call_id: str
    reason: str
    details: str | None
    created_at: datetime


class IceServerOut(BaseModel):
    """One entry of ``RTCConfiguration.iceServers``: TURN URLs and their credentials."""

    urls: list[str]
    username: str
    credential: str


class IceServersOut(BaseModel):
    ice_servers: list[IceServerOut]
    expires_at: datetime | None
    """When the credentials stop working (``null`` with no TURN configured)."""


class LeaveCallIn(StrictBody):
    """What the closing call page sends: the same message it sends over its socket."""

    message: Literal["hang_up", "cancel_call", "decline_call"]


class LeaveCallOut(BaseModel):
    done: bool
    """False when the call had already ended (or the command was passed to another node)."""
