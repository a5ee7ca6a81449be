"""What the call core tells people, and the one place that turns it into wire messages.

The call core says what happened as plain notifications (``CallStateChanged``,
``PeerConnectionState``, ...); ``wire_message`` is the only code that builds the
``signaling.ws_protocol`` models for them, and ``CallNotifier`` hands those to the
``Outbox`` (every socket of a person, on every node) or to one socket. So the wire
vocabulary is decided here, not wherever a call happens to need to tell someone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from server.calls.seams import CallSocket, Outbox
from server.messages import CONTACT_DETAILS_FLAG
from signaling import ws_limits
from signaling.call_state import CallEnd, CallPhase, CallState
from signaling.ws_protocol import (
    CallEndingSoonMessage,
    Caller,
    CallStartedMessage,
    CallStateMessage,
    ContactDetailsWarningMessage,
    IncomingCallMessage,
    PeerConnectionQualityMessage,
    PeerConnectionStateMessage,
    PeerMediaStateMessage,
    QualityLevel,
    VideoPausedMessage,
    chat_message,
)

CONTACT_DETAILS_WARNING = (
    "Sharing phone numbers, e-mail addresses or other contact details is not allowed here. "
    "This call is recorded and may be reviewed."
)


@dataclass(frozen=True, slots=True)
class CallStateChanged:
    """The call moved to another phase (to both participants)."""

    call_id: str
    phase: CallPhase
    end: CallEnd | None = None

    @classmethod
    def of(cls, state: CallState) -> CallStateChanged:
        return cls(state.call_id, state.phase, state.end)


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The seller's call rings (the reply to ``start_call``)."""

    call_id: str
    thread_id: str
    join_url: str
    ring_timeout_s: float


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """The buyer's call rings (every socket of theirs, and any that opens while it rings)."""

    call_id: str
    thread_id: str
    caller_id: str
    caller_name: str
    join_url: str
    ring_timeout_s: float


@dataclass(frozen=True, slots=True)
class PeerMediaState:
    """``user_id``'s microphone and camera switches, to the other participant."""

    call_id: str
    user_id: str
    audio: bool
    video: bool

    @classmethod
    def of(cls, state: CallState, user_id: str) -> PeerMediaState:
        p = state.participant(user_id)
        return cls(state.call_id, user_id, p.audio, p.video)


@dataclass(frozen=True, slots=True)
class PeerConnectionState:
    """``user_id`` is lost (the call waits for them) or back, to the other participant."""

    call_id: str
    user_id: str
    reconnecting: bool


@dataclass(frozen=True, slots=True)
class PeerConnectionQuality:
    """``user_id``'s own link quality as their page measured it, to the other participant."""

    call_id: str
    user_id: str
    level: QualityLevel


@dataclass(frozen=True, slots=True)
class ChatMessagePosted:
    """A chat message as stored."""

    call_id: str
    message_id: str
    sender_id: str
    text: str
    flags: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ContactDetailsWarning:
    """The sender's chat message looked like contact details (to the sender only)."""

    call_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class VideoPaused:
    """Video to ``user_id`` paused (their connection cannot carry it) or flows again."""

    call_id: str
    user_id: str
    paused: bool


@dataclass(frozen=True, slots=True)
class CallEndingSoon:
    """The call reaches its maximum length in ``seconds_left`` seconds."""

    call_id: str
    seconds_left: float
    max_minutes: float


CallNotification = (
    CallStateChanged
    | CallStarted
    | IncomingCall
    | PeerMediaState
    | PeerConnectionState
    | PeerConnectionQuality
    | ChatMessagePosted
    | ContactDetailsWarning
    | VideoPaused
    | CallEndingSoon
)


def wire_message(notification: CallNotification, *, request_id: int | None = None) -> BaseModel:
    """The WebSocket message for ``notification``; ``request_id`` on a reply to a request."""
    match notification:
        case CallStateChanged(call_id=call_id, phase=phase, end=end):
            return CallStateMessage(
                call_id=call_id,
                state=phase,
                end_reason=end.reason if end else None,
                ended_by=end.by if end else None,
                detail=end.detail if end else None,
            )
        case CallStarted():
            return CallStartedMessage(
                id=request_id,
                call_id=notification.call_id,
                thread_id=notification.thread_id,
                join_url=notification.join_url,
                ring_timeout_s=notification.ring_timeout_s,
            )
        case IncomingCall():
            return IncomingCallMessage(
                call_id=notification.call_id,
                thread_id=notification.thread_id,
                caller=Caller(
                    id=notification.caller_id,
                    display_name=notification.caller_name[: ws_limits.MAX_DISPLAY_NAME_CHARS],
                ),
                join_url=notification.join_url,
                ring_timeout_s=notification.ring_timeout_s,
            )
        case PeerMediaState(call_id=call_id, user_id=user_id, audio=audio, video=video):
            return PeerMediaStateMessage(call_id=call_id, user_id=user_id, audio=audio, video=video)
        case PeerConnectionState(call_id=call_id, user_id=user_id, reconnecting=reconnecting):
            return PeerConnectionStateMessage(
                call_id=call_id,
                user_id=user_id,
                state="reconnecting" if reconnecting else "connected",
            )
        case PeerConnectionQuality(call_id=call_id, user_id=user_id, level=level):
            return PeerConnectionQualityMessage(call_id=call_id, user_id=user_id, level=level)
        case ChatMessagePosted():
            return chat_message(
                call_id=notification.call_id,
                message_id=notification.message_id,
                sender_id=notification.sender_id,
                text=notification.text,
                flags=notification.flags,
                created_at=notification.created_at,
                id=request_id,
            )
        case ContactDetailsWarning(call_id=call_id, message_id=message_id):
            return ContactDetailsWarningMessage(
                call_id=call_id, message_id=message_id, message=CONTACT_DETAILS_WARNING
            )
        case VideoPaused(call_id=call_id, user_id=user_id, paused=paused):
            return VideoPausedMessage(call_id=call_id, user_id=user_id, paused=paused)
        case CallEndingSoon(call_id=call_id, seconds_left=seconds_left, max_minutes=minutes):
            return CallEndingSoonMessage(
                call_id=call_id, seconds_left=round(seconds_left, 3), max_minutes=minutes
            )


def chat_replies(posted: ChatMessagePosted, request_id: int | None) -> list[BaseModel]:
    """The sender's replies to a chat: the stored copy, and a warning if it was flagged."""
    replies = [wire_message(posted, request_id=request_id)]
    if CONTACT_DETAILS_FLAG in posted.flags:
        replies.append(wire_message(ContactDetailsWarning(posted.call_id, posted.message_id)))
    return replies


class CallNotifier:
    """Tells people what a call did, in wire form, through the ``Outbox``."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def to_user(
        self,
        user_id: str,
        notification: CallNotification,
        *,
        exclude_connection: str | None = None,
    ) -> None:
        """Every socket of ``user_id`` on every node (but ``exclude_connection``)."""
        message = wire_message(notification)
        self._outbox.send_to_user(user_id, message, exclude_connection=exclude_connection)

    def to_users(
        self,
        user_ids: Iterable[str],
        notification: CallNotification,
        *,
        exclude_connection: str | None = None,
    ) -> None:
        message = wire_message(notification)
        for user_id in user_ids:
            self._outbox.send_to_user(user_id, message, exclude_connection=exclude_connection)

    def to_socket(self, socket: CallSocket, notification: CallNotification) -> None:
        socket.send(wire_message(notification))
