"""The events the host marketplace hears, one function per type (DESIGN.md section 8).

``data`` carries ids and facts, never names, chat text or an admin's free-text reason:
webhook bodies end up in the host's logs.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Call, Recording
from server.webhooks.outbox import emit, timestamp

CALL_STARTED = "call.started"
CALL_ENDED = "call.ended"
RECORDING_STORED = "recording.stored"
REVIEW_VERDICT = "review.verdict"
USER_RESTRICTED = "user.restricted"
USER_UNRESTRICTED = "user.unrestricted"
EVENT_TYPES = (
    CALL_STARTED,
    CALL_ENDED,
    RECORDING_STORED,
    REVIEW_VERDICT,
    USER_RESTRICTED,
    USER_UNRESTRICTED,
)


def _call_parties(call: Call) -> dict[str, str]:
    return {
        "call_id": call.id,
        "thread_id": call.thread_id,
        "seller_id": call.seller_id,
        "buyer_id": call.buyer_id,
    }


def call_started(session: AsyncSession, call: Call) -> None:
    """The call became active: both people consented and their media connected."""
    emit(session, CALL_STARTED, {**_call_parties(call), "started_at": timestamp(call.connected_at)})


def call_ended(session: AsyncSession, call: Call) -> None:
    """Any call that ended, whether it became active or not (``started_at`` null)."""
    duration = None
    if call.connected_at is not None and call.ended_at is not None:
        duration = round((call.ended_at - call.connected_at).total_seconds(), 3)
    emit(
        session,
        CALL_ENDED,
        {
            **_call_parties(call),
            "end_reason": call.end_reason,
            "ended_by": call.ended_by,
            "started_at": timestamp(call.connected_at),
            "ended_at": timestamp(call.ended_at),
            "duration_seconds": duration,
        },
    )


def recording_stored(session: AsyncSession, recording: Recording) -> None:
    """One participant's recording is stored (one event per participant)."""
    emit(
        session,
        RECORDING_STORED,
        {
            "call_id": recording.call_id,
            "user_id": recording.participant_id,
            "recording_id": recording.id,
            "state": recording.state,  # finalised | interrupted
            "mime_type": recording.mime_type,
            "duration_seconds": recording.duration,
            "size_bytes": recording.size,
            "sha256": recording.sha256,
        },
    )


def review_verdict(
    session: AsyncSession,
    *,
    call_id: str,
    verdict: str,
    reviewer_id: str,
    subject_user_id: str | None,
    violation: bool,
) -> None:
    """A reviewer's verdict; a violation also restricts its subject (``user.restricted``)."""
    emit(
        session,
        REVIEW_VERDICT,
        {
            "call_id": call_id,
            "verdict": verdict,
            "violation": violation,
            "user_id": subject_user_id if violation else None,
            "reviewer_id": reviewer_id,
        },
    )
    if violation and subject_user_id is not None:
        user_restricted(session, user_id=subject_user_id, call_id=call_id, verdict=verdict)


def user_restricted(session: AsyncSession, *, user_id: str, call_id: str, verdict: str) -> None:
    emit(
        session,
        USER_RESTRICTED,
        {"user_id": user_id, "call_id": call_id, "verdict": verdict, "source": "violation"},
    )


def user_unrestricted(
    session: AsyncSession, *, user_id: str, violation_call_ids: list[str], host_restricted: bool
) -> None:
    """inboxcall no longer restricts the user; ``host_restricted`` says whether the host's
    own ``restricted`` flag still does."""
    emit(
        session,
        USER_UNRESTRICTED,
        {
            "user_id": user_id,
            "call_ids": violation_call_ids,
            "host_restricted": host_restricted,
            "source": "admin",
        },
    )
