"""Compliance review: the queue, claims, replay of both recordings, timeline, verdicts.

Only reviewers and admins get here; the role is checked on every request, recordings are
reachable only through a short-lived replay grant bound to the reviewer and the recording,
and every replay, claim, verdict and deletion leaves one audit row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Literal

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r206, r401, r403, r404, r409, r410, r416, r422
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from moderation.contact_details import find_contact_details
from recorder.storage import ObjectNotFoundError
from server.api.byte_ranges import RangeRefused, requested_byte_range
from server.api.openapi import api_handler
from server.api.schemas import (
    AuditList,
    AuditOut,
    ContactSpan,
    ErrorBody,
    EventOut,
    PolicySettings,
    PolicySettingsIn,
    PurgeOut,
    QueueItem,
    QueueOut,
    ReasonIn,
    RecordingOut,
    ReplayGrant,
    ReportOut,
    ReviewCallDetail,
    ReviewState,
    SamplingOut,
    TranscriptLine,
    VerdictIn,
)
from server.appkeys import DB, RECORDING_STORAGE, RETENTION_JOB, REVIEWS, SETTINGS
from server.audit import audit
from server.auth import current_user, require_role
from server.clock import utcnow
from server.db.models import (
    AuditEntry,
    Call,
    CallEvent,
    CallReport,
    Message,
    Recording,
    Review,
    RuntimeSetting,
    User,
)
from server.errors import ApiError, error_response, not_found
from server.policy import effective_policy
from server.recording_service import DELETABLE_STATES, delete_bytes, tombstone_recording
from server.review.lifecycle import Refusal, ReviewRefused, claim_holder
from server.review.service import release_hold
from server.serialize import user_out

CallId = Annotated[str, Field(min_length=1, max_length=64)]
RecordingId = Annotated[str, Field(min_length=1, max_length=64)]
REPLAY_GRANT_SECONDS = 600


async def reviewer(request: web.Request, session: AsyncSession) -> User:
    user = await current_user(request, session)
    require_role(user, "reviewer", "admin")
    return user


async def admin(request: web.Request, session: AsyncSession) -> User:
    user = await current_user(request, session)
    require_role(user, "admin")
    return user


def _offset(at: datetime | None, start: datetime | None) -> float | None:
    if at is None or start is None:
        return None
    return round((at - start).total_seconds(), 3)


def recording_out(row: Recording) -> RecordingOut:
    return RecordingOut(
        id=row.id,
        participant_id=row.participant_id,
        state=row.state,
        mime_type=row.mime_type,
        video_codec=row.video_codec,
        audio_codec=row.audio_codec,
        start_offset=row.start_offset,
        duration=row.duration,
        size=row.size,
        sha256=row.sha256,
        hold=row.hold,
        deleted_reason=row.deleted_reason,
    )


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id,
        at=entry.at,
        actor_id=entry.actor_id,
        action=entry.action,
        target_type=entry.target_type,
        target_id=entry.target_id,
        details=dict(entry.details or {}),
    )


def _claim_holder(review: Review | None, now: datetime) -> str | None:
    if review is None:
        return None
    return claim_holder(review.reviewer_id, review.claim_expires_at, now)


def _claim_expiry(review: Review | None, now: datetime) -> datetime | None:
    return review.claim_expires_at if review and _claim_holder(review, now) else None


# The lifecycle's refusals, as HTTP answers (the one place they are translated).
_REFUSAL_STATUS = {Refusal.NOT_IN_QUEUE: 404, Refusal.SUBJECT_REQUIRED: 422}


def refused(exc: ReviewRefused) -> ApiError:
    if exc.refusal is Refusal.NOT_IN_QUEUE:
        return not_found("call in the review queue")
    return ApiError(_REFUSAL_STATUS.get(exc.refusal, 409), exc.refusal.value, exc.message)


@api_handler
async def get_queue(
    request: web.Request,
    kind: Literal["all", "mandatory", "sampled"] = "all",
    status: Literal["open", "reviewed", "all"] = "open",
    min_age_hours: Annotated[float, Field(ge=0, le=24 * 365)] = 0,
    max_age_hours: Annotated[float, Field(ge=0, le=24 * 365)] | None = None,
) -> r200[QueueOut] | r401[ErrorBody] | r403[ErrorBody] | r422[ErrorBody]:
    """Calls waiting for review: mandatory ones (risk signal) and randomly sampled ones.

    Tags: review
    """
    now = utcnow()
    async with request.app[DB]() as session:
        await reviewer(request, session)
    rows = await request.app[REVIEWS].queue(
        kind=kind,
        status=status,
        min_age=timedelta(hours=min_age_hours),
        max_age=None if max_age_hours is None else timedelta(hours=max_age_hours),
        now=now,
    )
    items = [
        QueueItem(
            call_id=row.call.id,
            thread_id=row.call.thread_id,
            seller=user_out(row.seller),
            buyer=user_out(row.buyer),
            created_at=row.call.created_at,
            ended_at=row.call.ended_at,
            duration_seconds=row.call.duration_seconds,
            end_reason=row.call.end_reason,
            mandatory=bool(row.call.mandatory_reasons),
            mandatory_reasons=list(row.call.mandatory_reasons or []),
            sampled=row.call.sampled,
            claimed_by=_claim_holder(row.review, now),
            claim_expires_at=_claim_expiry(row.review, now),
            verdict=row.review.verdict if row.review else None,
        )
        for row in rows
    ]
    return web.json_response(QueueOut(calls=items).model_dump(mode="json"))


async def _review_call(session: AsyncSession, call_id: str) -> Call:
    call = await session.get(Call, call_id)
    if call is None or not call.review_required:
        raise not_found("call in the review queue")
    return call


@api_handler
async def claim_call(
    request: web.Request, call_id: CallId, /
) -> r200[ReviewState] | r401[ErrorBody] | r403[ErrorBody] | r404[ErrorBody] | r409[ErrorBody]:
    """Claim a call: one reviewer at a time; a claim expires unless renewed.

    Tags: review
    """
    async with request.app[DB]() as session:
        user = await reviewer(request, session)
    try:
        review = await request.app[REVIEWS].claim(call_id, user.id)
    except ReviewRefused as exc:
        raise refused(exc) from None
    return web.json_response(_review_state(review, utcnow()).model_dump(mode="json"))


def _review_state(review: Review | None, now: datetime) -> ReviewState:
    if review is None:
        return ReviewState(
            claimed_by=None, claim_expires_at=None, verdict=None, notes="", verdict_at=None
        )
    holder = _claim_holder(review, now)
    return ReviewState(
        claimed_by=holder,
        claim_expires_at=_claim_expiry(review, now),
        verdict=review.verdict,
        notes=review.notes,
        verdict_at=review.verdict_at,
    )


@api_handler
async def get_review_call(
    request: web.Request, call_id: CallId, /
) -> r200[ReviewCallDetail] | r401[ErrorBody] | r403[ErrorBody] | r404[ErrorBody]:
    """Everything a reviewer needs: both recordings, the event timeline, the chat with
    detector hits, reports, the review state and the call's audit trail.

    Tags: review
    """
    now = utcnow()
    async with request.app[DB]() as session:
        await reviewer(request, session)
        call = await _review_call(session, call_id)
        seller = await session.get(User, call.seller_id)
        buyer = await session.get(User, call.buyer_id)
        assert seller is not None and buyer is not None
        recordings = (
            await session.scalars(
                select(Recording)
                .where(Recording.call_id == call_id)
                .order_by(Recording.participant_id)
            )
        ).all()
        events = (
            await session.scalars(
                select(CallEvent)
                .where(CallEvent.call_id == call_id)
                .order_by(CallEvent.at, CallEvent.id)
            )
        ).all()
        chat = (
            await session.scalars(
                select(Message)
                .where(Message.call_id == call_id, Message.kind == "call_chat")
                .order_by(Message.created_at)
            )
        ).all()
        reports = (
            await session.scalars(
                select(CallReport).where(CallReport.call_id == call_id).order_by(CallReport.id)
            )
        ).all()
        review = await session.get(Review, call_id)
        recording_ids = [r.id for r in recordings]
        trail = (
            await session.scalars(
                select(AuditEntry)
                .where(
                    or_(AuditEntry.target_id == call_id, AuditEntry.target_id.in_(recording_ids))
                )
                .order_by(AuditEntry.id)
            )
        ).all()
    # Offsets are seconds on the recordings' shared clock: zero is the first recorded frame.
    start = _recording_start(call)
    detail = ReviewCallDetail(
        call_id=call.id,
        thread_id=call.thread_id,
        seller=user_out(seller),
        buyer=user_out(buyer),
        state=call.state,
        end_reason=call.end_reason,
        ended_by=call.ended_by,
        created_at=call.created_at,
        connected_at=call.connected_at,
        ended_at=call.ended_at,
        duration_seconds=call.duration_seconds,
        interrupted=call.interrupted,
        recording_started_at=start,
        sampling=SamplingOut(
            rate=call.sample_rate,
            key_id=call.sample_key_id,
            draw=call.sample_draw,
            sampled=call.sampled,
            mandatory_reasons=list(call.mandatory_reasons or []),
        ),
        recordings=[recording_out(r) for r in recordings],
        events=[
            EventOut(
                kind=e.kind,
                user_id=e.user_id,
                at=e.at,
                offset=_offset(e.at, start),
                data=dict(e.data or {}),
            )
            for e in events
        ],
        transcript=[
            TranscriptLine(
                id=m.id,
                sender_id=m.sender_id,
                text=m.text,
                flags=list(m.flags or []),
                hits=[
                    ContactSpan(kind=h.kind, start=h.start, end=h.end)
                    for h in find_contact_details(m.text)
                ],
                created_at=m.created_at,
                offset=_offset(m.created_at, start),
            )
            for m in chat
        ],
        reports=[
            ReportOut(reporter_id=r.reporter_id, reason=r.reason, created_at=r.created_at)
            for r in reports
        ],
        review=_review_state(review, now),
        audit=[audit_out(a) for a in trail],
    )
    return web.json_response(detail.model_dump(mode="json"))


def _recording_start(call: Call) -> datetime | None:
    # The recordings' clock starts at the first recorded frame; older rows fall back.
    return call.recording_started_at or call.connected_at or call.created_at


@api_handler
async def grant_replay(
    request: web.Request, recording_id: RecordingId, /
) -> (
    r200[ReplayGrant]
    | r401[ErrorBody]
    | r403[ErrorBody]
    | r404[ErrorBody]
    | r409[ErrorBody]
    | r410[ErrorBody]
):
    """Start a replay: audited once, answers a short-lived media URL for this reviewer only.

    Tags: review
    """
    async with request.app[DB]() as session, session.begin():
        user = await reviewer(request, session)
        row = await session.get(Recording, recording_id)
        if row is None:
            raise not_found("recording")
        await _review_call(session, row.call_id)  # only calls in the review queue replay
        if row.state == "deleted":
            raise ApiError(
                410, "recording_deleted", f"This recording was deleted: {row.deleted_reason}."
            )
        if row.state not in DELETABLE_STATES:
            raise ApiError(409, "recording_not_ready", "This recording is still being finalised.")
        audit(
            session,
            actor_id=user.id,
            action="recording.replay",
            target_type="recording",
            target_id=row.id,
            call_id=row.call_id,
        )
        mime = row.mime_type
    grant = _grant_serializer(request).dumps({"r": recording_id, "u": user.id})
    out = ReplayGrant(
        recording_id=recording_id,
        media_url=f"/api/v1/review/recordings/{recording_id}/media?grant={grant}",
        mime_type=mime,
        expires_in=REPLAY_GRANT_SECONDS,
    )
    return web.json_response(out.model_dump(mode="json"))


def _grant_serializer(request: web.Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        request.app[SETTINGS].secret_key.get_secret_value(), salt="replay"
    )


@api_handler
async def recording_media(
    request: web.Request,
    recording_id: RecordingId,
    /,
    grant: Annotated[str, Field(max_length=400)] = "",
) -> (
    r200[bytes]
    | r206[bytes]
    | r401[ErrorBody]
    | r403[ErrorBody]
    | r404[ErrorBody]
    | r410[ErrorBody]
    | r416[ErrorBody]
):
    """The recording's bytes, with HTTP range requests (seeking), for the granted reviewer.

    Tags: review
    """
    async with request.app[DB]() as session:
        user = await reviewer(request, session)
        row = await session.get(Recording, recording_id)
    try:
        data = _grant_serializer(request).loads(grant, max_age=REPLAY_GRANT_SECONDS)
    except SignatureExpired as exc:
        raise ApiError(
            403, "replay_grant_expired", "This replay link expired; press Play again."
        ) from exc
    except BadSignature as exc:
        raise ApiError(
            403, "replay_grant_invalid", "Start the replay from the review console."
        ) from exc
    if data != {"r": recording_id, "u": user.id}:
        raise ApiError(403, "replay_grant_invalid", "Start the replay from the review console.")
    if row is None or row.state not in DELETABLE_STATES:
        raise not_found("recording")
    storage = request.app[RECORDING_STORAGE]
    try:
        size = await storage.size(row.storage_key)
    except ObjectNotFoundError as exc:
        raise ApiError(410, "recording_gone", "The recording's bytes are gone.") from exc
    try:
        wanted = requested_byte_range(request.headers.get("Range"), size)
    except RangeRefused as exc:
        refusal = error_response(416, exc.code, exc.message)
        refusal.headers["Content-Range"] = f"bytes */{size}"
        return refusal
    start, stop = (0, size) if wanted is None else (wanted.start, wanted.stop)
    response = web.StreamResponse(status=200 if wanted is None else 206)
    response.content_type = row.mime_type or "application/octet-stream"
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = "private, no-store"
    response.content_length = stop - start
    if wanted is not None:
        response.headers["Content-Range"] = wanted.content_range(size)
    await response.prepare(request)
    if request.method != "HEAD":
        async with await storage.open_range(row.storage_key, start, stop - 1) as chunks:
            async for chunk in chunks:
                await response.write(chunk)
    await response.write_eof()
    return response


@api_handler
async def submit_verdict(
    request: web.Request, call_id: CallId, /, body: VerdictIn
) -> (
    r200[ReviewState]
    | r401[ErrorBody]
    | r403[ErrorBody]
    | r404[ErrorBody]
    | r409[ErrorBody]
    | r422[ErrorBody]
):
    """Record the verdict on a call you hold the claim for. A violation verdict is recorded
    against the person (and restricts their account); its recordings are kept until released.

    Tags: review
    """
    async with request.app[DB]() as session:
        user = await reviewer(request, session)
    try:
        outcome = await request.app[REVIEWS].submit_verdict(
            call_id, user.id, body.verdict, body.notes, body.subject_user_id
        )
    except ReviewRefused as exc:
        raise refused(exc) from None
    return web.json_response(_review_state(outcome.review, utcnow()).model_dump(mode="json"))


@api_handler
async def get_audit(
    request: web.Request,
    target_id: Annotated[str, Field(max_length=128)] | None = None,
    action: Annotated[str, Field(max_length=48)] | None = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 200,
) -> r200[AuditList] | r401[ErrorBody] | r403[ErrorBody] | r422[ErrorBody]:
    """The append-only audit log, newest first.

    Tags: review
    """
    async with request.app[DB]() as session:
        await reviewer(request, session)
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if target_id is not None:
            query = query.where(AuditEntry.target_id == target_id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        entries = (await session.scalars(query)).all()
    return web.json_response(
        AuditList(entries=[audit_out(e) for e in entries]).model_dump(mode="json")
    )


@api_handler
async def delete_recording(
    request: web.Request, recording_id: RecordingId, /, body: ReasonIn
) -> (
    r200[RecordingOut]
    | r401[ErrorBody]
    | r403[ErrorBody]
    | r404[ErrorBody]
    | r409[ErrorBody]
    | r422[ErrorBody]
):
    """Admin only: delete a recording's bytes, giving a reason; a tombstone row stays.

    Tags: admin
    """
    storage = request.app[RECORDING_STORAGE]

    async def delete(session: AsyncSession, row: Recording) -> AfterCommit:
        if row.state not in DELETABLE_STATES:
            raise ApiError(
                409, "not_deletable", f"A recording in state {row.state!r} cannot be deleted."
            )
        key = await tombstone_recording(
            session, row.id, reason=f"admin: {body.reason}", now=utcnow()
        )
        if key is None:
            raise ApiError(409, "not_deletable", "This recording was deleted meanwhile.")
        await session.refresh(row)
        return lambda: delete_bytes(storage, key)

    return await _admin_changes_recording(request, recording_id, body, "recording.delete", delete)


@api_handler
async def release_recording(
    request: web.Request, recording_id: RecordingId, /, body: ReasonIn
) -> (
    r200[RecordingOut]
    | r401[ErrorBody]
    | r403[ErrorBody]
    | r404[ErrorBody]
    | r409[ErrorBody]
    | r422[ErrorBody]
):
    """Admin only: release a violation hold so retention may delete the recording.

    Tags: admin
    """

    async def release(session: AsyncSession, row: Recording) -> AfterCommit:
        try:
            release_hold(row, utcnow())
        except ReviewRefused as exc:
            raise refused(exc) from None
        return None

    return await _admin_changes_recording(request, recording_id, body, "recording.release", release)


AfterCommit = Callable[[], Awaitable[None]] | None


async def _admin_changes_recording(
    request: web.Request,
    recording_id: str,
    body: ReasonIn,
    action: str,
    change: Callable[[AsyncSession, Recording], Awaitable[AfterCommit]],
) -> web.Response:
    """An admin's change to one recording, with its reason, in one audited transaction."""
    async with request.app[DB]() as session, session.begin():
        user = await admin(request, session)
        row = await session.get(Recording, recording_id, with_for_update=True)
        if row is None:
            raise not_found("recording")
        after_commit = await change(session, row)
        audit(
            session,
            actor_id=user.id,
            action=action,
            target_type="recording",
            target_id=row.id,
            reason=body.reason,
            call_id=row.call_id,
        )
        out = recording_out(row)
    if after_commit is not None:
        await after_commit()
    return web.json_response(out.model_dump(mode="json"))


@api_handler
async def get_policy(
    request: web.Request,
) -> r200[PolicySettings] | r401[ErrorBody] | r403[ErrorBody]:
    """The review sampling rate and retention periods in force.

    Tags: admin
    """
    async with request.app[DB]() as session:
        await reviewer(request, session)
        policy = await effective_policy(session, request.app[SETTINGS])
    return web.json_response(policy.model_dump(mode="json"))


@api_handler
async def put_policy(
    request: web.Request, body: PolicySettingsIn
) -> r200[PolicySettings] | r401[ErrorBody] | r403[ErrorBody] | r422[ErrorBody]:
    """Admin only: change the sampling rate or retention periods (each change is audited).

    Tags: admin
    """
    async with request.app[DB]() as session, session.begin():
        user = await admin(request, session)
        before = await effective_policy(session, request.app[SETTINGS])
        for key, value in body.model_dump(exclude_none=True).items():
            old = getattr(before, key)
            if old == value:
                continue
            row = await session.get(RuntimeSetting, key)
            if row is None:
                session.add(RuntimeSetting(key=key, value=str(value)))
            else:
                row.value = str(value)
            audit(
                session,
                actor_id=user.id,
                action="settings.change",
                target_type="setting",
                target_id=key,
                old=old,
                new=value,
            )
        await session.flush()
        policy = await effective_policy(session, request.app[SETTINGS])
    return web.json_response(policy.model_dump(mode="json"))


@api_handler
async def run_purge(request: web.Request) -> r200[PurgeOut] | r401[ErrorBody] | r403[ErrorBody]:
    """Admin only: run the retention purge now (it also runs on a timer).

    Tags: admin
    """
    async with request.app[DB]() as session:
        await admin(request, session)
    deleted = await request.app[RETENTION_JOB].run_once()
    return web.json_response(PurgeOut(deleted=deleted).model_dump(mode="json"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/review/queue", get_queue)
    app.router.add_post("/api/v1/review/calls/{call_id}/claim", claim_call)
    app.router.add_get("/api/v1/review/calls/{call_id}", get_review_call)
    app.router.add_post("/api/v1/review/calls/{call_id}/verdict", submit_verdict)
    app.router.add_post("/api/v1/review/recordings/{recording_id}/replay", grant_replay)
    app.router.add_get("/api/v1/review/recordings/{recording_id}/media", recording_media)
    app.router.add_get("/api/v1/review/audit", get_audit)
    app.router.add_post("/api/v1/admin/recordings/{recording_id}/delete", delete_recording)
    app.router.add_post("/api/v1/admin/recordings/{recording_id}/release", release_recording)
    app.router.add_get("/api/v1/admin/policy", get_policy)
    app.router.add_put("/api/v1/admin/policy", put_policy)
    app.router.add_post("/api/v1/admin/purge", run_purge)
