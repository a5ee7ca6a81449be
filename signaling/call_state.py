"""A call's lifecycle as a pure state machine: ``ringing -> connecting -> active -> ended``.

Nothing here does I/O, reads a clock or schedules anything. The lifecycle owner (in
``server``) feeds inputs with the time they happened, stores the changes it gets back,
tells the clients, and arms one timer at ``state.next_deadline()``; when it fires it
feeds ``DeadlinesDue``. Timestamps are timezone-aware ``datetime`` values (UTC by convention)
because every emitted ``CallEvent`` is stored and shown to reviewers as wall-clock time.

Who may do what, and when (anything else raises ``IllegalCallTransition`` naming the
phase, or ``CallActionNotAllowed`` naming the participant's role):

=====================  ==============================  ====================================
input                  phases                          who
=====================  ==============================  ====================================
``Cancel``             ringing                         the seller (the caller)
``Accept``             ringing                         the buyer; the buyer joins
``Decline``            ringing                         the buyer
``HangUp``             connecting, active              either participant in the call
``LegStateChanged``    ringing, connecting, active     a participant in the call: their media
                                                       leg reported connected, disconnected,
                                                       failed or closed (see below); when both
                                                       legs are connected, connecting ->
                                                       active (the seller's leg may connect
                                                       while it still rings)
``SocketClosed``       ringing, connecting, active     a participant in the call: their call
                                                       socket closed
``SocketAttached``     ringing, connecting, active     a participant in the call: a socket of
                                                       theirs is their call socket again
``MediaStateChanged``  ringing, connecting, active     a participant in the call
``ChatPosted``         connecting, active              a participant in the call
``Reported``           any, also ended                 either participant, joined or not
``EligibilityLost``    ringing, connecting, active     (the server)
``MediaUnavailable``   ringing, connecting, active     (the server)
``ServerShutdown``     ringing, connecting, active     (the server)
``DeadlinesDue``       any; a no-op if nothing is due  (the owner's timer)
=====================  ==============================  ====================================

A user who is neither the seller nor the buyer gets ``NotACallParticipant`` before any
phase check, so a stranger learns nothing about the call. "A participant in the call"
means joined and not left: the seller joins when the call
starts, the buyer when they accept. ``HangUp`` while ringing is illegal on purpose: the
caller cancels and the buyer declines, and the two end reasons mean different things to
reviewers and to rate limits.

Who is lost (reconnect grace), decided here from what the owner reports: a participant
whose call socket closed, or whose media leg went ``disconnected``, ``closed``, or
``failed`` after it had connected once. A leg that fails before it ever connected ends the
call ``failed`` / ``ice_failed`` at once: the network between that browser and the server
does not work, and retrying would only make both people wait. A lost participant is back
only when both are up again: a socket of theirs attached since the last one closed, and
their media leg connected since it was lost (in either order). A participant whose socket
comes back while their leg stayed up counts as media-connected again at once. One who is
not back within the grace period ends the call ``failed`` / ``participant_lost``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import assert_never


class CallPhase(StrEnum):
    RINGING = "ringing"
    CONNECTING = "connecting"
    ACTIVE = "active"
    ENDED = "ended"


LIVE_PHASES = frozenset({CallPhase.RINGING, CallPhase.CONNECTING, CallPhase.ACTIVE})


class EndReason(StrEnum):
    HUNG_UP = "hung_up"
    """A participant hung up while connecting or active (``CallEnd.by`` says who)."""
    MISSED = "missed"
    """The buyer did not answer within the ring timeout."""
    DECLINED = "declined"
    """The buyer declined while it rang."""
    CANCELLED = "cancelled"
    """The seller gave up while it rang."""
    FAILED = "failed"
    """Media could not be set up or kept up; ``CallEnd.detail`` is a ``FailureDetail``."""
    INELIGIBLE = "ineligible"
    """An eligibility rule stopped holding; ``CallEnd.detail`` is its reason code."""
    SERVER_SHUTDOWN = "server_shutdown"


class FailureDetail(StrEnum):
    ICE_FAILED = "ice_failed"
    DTLS_FAILED = "dtls_failed"
    PARTICIPANT_LOST = "participant_lost"
    """Lost for longer than the reconnect grace period."""
    CONNECT_TIMEOUT = "connect_timeout"
    """Accepted, but both legs' media were not connected within the connect timeout."""
    MEDIA_WORKER_LOST = "media_worker_lost"
    """The media worker process carrying the call's media died."""
    RECORDING_FAILED = "recording_failed"
    """The call could not be recorded; an unrecorded call does not go on."""
    NODE_LOST = "node_lost"
    """The node that ran the call stopped answering; another node ended the call."""


class Role(StrEnum):
    SELLER = "seller"
    BUYER = "buyer"


class CallEventKind(StrEnum):
    """In-call happenings worth storing; ``CallEvent.detail`` meaning per kind."""

    JOINED = "joined"
    LEFT = "left"  # detail: the call's EndReason
    MUTED = "muted"  # microphone
    UNMUTED = "unmuted"
    CAMERA_OFF = "camera_off"
    CAMERA_ON = "camera_on"
    RECONNECTING = "reconnecting"  # detail: the cause the owner gave, if any
    RECONNECTED = "reconnected"
    CHAT = "chat"  # detail: the chat message id; flags: the message's flags
    REPORT = "report"  # detail: the report reason


class DeadlineKind(StrEnum):
    RING = "ring"
    CONNECT = "connect"
    RECONNECT_GRACE = "reconnect_grace"


DEFAULT_RING_TIMEOUT = timedelta(seconds=45)
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=30)
DEFAULT_RECONNECT_GRACE = timedelta(seconds=20)


@dataclass(frozen=True, slots=True)
class CallTimeouts:
    ring: timedelta = DEFAULT_RING_TIMEOUT
    connect: timedelta = DEFAULT_CONNECT_TIMEOUT
    """From accept until both legs' media are connected; without it a call whose client
    never sends an offer would sit in ``connecting`` forever."""
    reconnect_grace: timedelta = DEFAULT_RECONNECT_GRACE

    def __post_init__(self) -> None:
        for name in ("ring", "connect", "reconnect_grace"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"timeout {name} must be positive")


# --- errors ----------------------------------------------------------------------------


class CallStateError(Exception):
    """Base of the errors this module raises for inputs that do not fit the call."""

    def __init__(self, message: str, *, phase: CallPhase, end: CallEnd | None) -> None:
        super().__init__(message)
        self.phase = phase
        self.end = end


class IllegalCallTransition(CallStateError):
    """The input is not allowed in the call's current phase (the message names it)."""


class CallActionNotAllowed(CallStateError):
    """The phase allows the input, but not from this user (wrong role, not joined)."""


class NotACallParticipant(CallActionNotAllowed):
    """The user is neither the call's seller nor its buyer."""


# --- records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParticipantPresence:
    """Where one participant stands in the call.

    ``lost_since`` is set while the participant is lost (cleared when they are back; left
    as it was when the call ends). ``media_connected`` is whether their media leg is up as
    far as the owner reported. ``audio`` / ``video`` start on, as the pages start them.
    ``socket_lost``, ``media_lost`` and ``media_ever_connected`` are what the owner reported
    about their call socket and their media leg; the module docstring says what they decide.
    """

    user_id: str
    role: Role
    joined_at: datetime | None = None
    left_at: datetime | None = None
    lost_since: datetime | None = None
    media_connected: bool = False
    audio: bool = True
    video: bool = True
    socket_lost: bool = False
    """Their call socket closed and no socket of theirs has attached since."""
    media_lost: bool = False
    """Their media leg went disconnected, failed or closed, and has not connected since."""
    media_ever_connected: bool = False
    """Their media leg connected at least once in this call."""

    @property
    def in_call(self) -> bool:
        return self.joined_at is not None and self.left_at is None

    @property
    def lost(self) -> bool:
        return self.lost_since is not None

    @property
    def media_up(self) -> bool:
        """Their media leg's last report was ``connected``."""
        return self.media_ever_connected and not self.media_lost


@dataclass(frozen=True, slots=True)
class CallEnd:
    reason: EndReason
    at: datetime
    by: str | None = None
    """Who caused it: hung_up, declined, cancelled, and failed when one leg failed or was lost."""
    detail: str | None = None
    """``FailureDetail`` for failed, the eligibility reason code for ineligible."""


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One stored in-call happening (see ``CallEventKind`` for ``detail`` per kind)."""

    call_id: str
    kind: CallEventKind
    at: datetime
    user_id: str
    detail: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PhaseChanged:
    """The call moved to another phase; ``previous`` is ``None`` when the call starts."""

    call_id: str
    previous: CallPhase | None
    phase: CallPhase
    at: datetime
    end: CallEnd | None = None


Change = PhaseChanged | CallEvent


@dataclass(frozen=True, slots=True)
class Deadline:
    kind: DeadlineKind
    at: datetime
    user_id: str | None = None
    """Whose grace period this is (``RECONNECT_GRACE`` only)."""


@dataclass(frozen=True, slots=True)
class CallState:
    call_id: str
    thread_id: str
    seller: ParticipantPresence
    buyer: ParticipantPresence
    phase: CallPhase
    started_at: datetime
    timeouts: CallTimeouts = field(default_factory=CallTimeouts)
    answered_at: datetime | None = None
    active_at: datetime | None = None
    end: CallEnd | None = None

    @property
    def is_live(self) -> bool:
        return self.phase in LIVE_PHASES

    @property
    def participants(self) -> tuple[ParticipantPresence, ParticipantPresence]:
        return (self.seller, self.buyer)

    def describe(self) -> str:
        """The phase as error messages name it: ``"active"``, ``"ended: declined"``."""
        if self.end is None:
            return self.phase.value
        detail = f"/{self.end.detail}" if self.end.detail else ""
        return f"ended: {self.end.reason.value}{detail}"

    def participant(self, user_id: str) -> ParticipantPresence:
        if user_id == self.seller.user_id:
            return self.seller
        if user_id == self.buyer.user_id:
            return self.buyer
        raise NotACallParticipant(
            f"user {user_id} is not a participant of this call",
            phase=self.phase,
            end=self.end,
        )

    def peer_of(self, user_id: str) -> ParticipantPresence:
        """The other participant (to relay media state or chat to)."""
        me = self.participant(user_id)
        return self.buyer if me is self.seller else self.seller

    @property
    def ring_deadline(self) -> datetime | None:
        if self.phase is not CallPhase.RINGING:
            return None
        return self.started_at + self.timeouts.ring

    @property
    def connect_deadline(self) -> datetime | None:
        if self.phase is not CallPhase.CONNECTING or self.answered_at is None:
            return None
        return self.answered_at + self.timeouts.connect

    def grace_deadline(self, user_id: str) -> datetime | None:
        """When ``user_id``'s reconnect grace runs out, if they are lost in a live call."""
        p = self.participant(user_id)
        if not self.is_live or not p.in_call or p.lost_since is None:
            return None
        return p.lost_since + self.timeouts.reconnect_grace

    def deadlines(self) -> tuple[Deadline, ...]:
        """Every pending deadline, earliest first; empty once the call has ended."""
        found: list[Deadline] = []
        if (ring := self.ring_deadline) is not None:
            found.append(Deadline(DeadlineKind.RING, ring))
        if (connect := self.connect_deadline) is not None:
            found.append(Deadline(DeadlineKind.CONNECT, connect))
        for p in self.participants:
            if (grace := self.grace_deadline(p.user_id)) is not None:
                found.append(Deadline(DeadlineKind.RECONNECT_GRACE, grace, p.user_id))
        return tuple(sorted(found, key=lambda d: d.at))

    def next_deadline(self) -> Deadline | None:
        """Arm one timer at this (re-ask after every transition); ``None``: nothing pending."""
        pending = self.deadlines()
        return pending[0] if pending else None

    def expired_grace(self, now: datetime) -> tuple[str, ...]:
        """User ids whose reconnect grace period has run out at ``now``."""
        return tuple(
            p.user_id
            for p in self.participants
            if (grace := self.grace_deadline(p.user_id)) is not None and grace <= now
        )


@dataclass(frozen=True, slots=True)
class CallTransition:
    """The state after an input and what changed, in order (empty if nothing did)."""

    state: CallState
    changes: tuple[Change, ...] = ()

    @property
    def events(self) -> tuple[CallEvent, ...]:
        return tuple(c for c in self.changes if isinstance(c, CallEvent))

    @property
    def phase_change(self) -> PhaseChanged | None:
        return next((c for c in self.changes if isinstance(c, PhaseChanged)), None)


# --- inputs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    user_id: str


@dataclass(frozen=True, slots=True)
class Decline:
    user_id: str


@dataclass(frozen=True, slots=True)
class Cancel:
    user_id: str


@dataclass(frozen=True, slots=True)
class HangUp:
    user_id: str


class LegState(StrEnum):
    """The media leg states that are inputs (others, such as ``new`` or ``checking``, are
    not: they change nothing about who is lost or connected)."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class LegStateChanged:
    """The user's media leg reported ``leg``."""

    user_id: str
    leg: LegState


@dataclass(frozen=True, slots=True)
class SocketClosed:
    """The user's call socket closed (another socket of theirs closing is not an input)."""

    user_id: str


@dataclass(frozen=True, slots=True)
class SocketAttached:
    """A socket of the user's is their call socket again: a new connection, or any socket
    of theirs sending a message for the call."""

    user_id: str


@dataclass(frozen=True, slots=True)
class MediaStateChanged:
    user_id: str
    audio: bool
    video: bool


@dataclass(frozen=True, slots=True)
class ChatPosted:
    user_id: str
    message_id: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reported:
    user_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class EligibilityLost:
    """A rule stopped holding mid-call; ``reason`` is the eligibility reason code
    (``thread_has_order``, ``account_restricted``, ``buyer_blocked_seller``,
    ``thread_not_active``, ...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class MediaUnavailable:
    """The call's media service failed for both people at once (its worker died, or its
    recording could not go on): the call ends ``failed`` with ``detail``."""

    detail: FailureDetail


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    pass


@dataclass(frozen=True, slots=True)
class DeadlinesDue:
    """The owner's timer fired: end the call for the earliest deadline due at ``now``."""


CallInput = (
    Accept
    | Decline
    | Cancel
    | HangUp
    | LegStateChanged
    | SocketClosed
    | SocketAttached
    | MediaStateChanged
    | ChatPosted
    | Reported
    | EligibilityLost
    | MediaUnavailable
    | ServerShutdown
    | DeadlinesDue
)


# --- transitions -----------------------------------------------------------------------


def start_call(
    *,
    call_id: str,
    thread_id: str,
    seller_id: str,
    buyer_id: str,
    now: datetime,
    timeouts: CallTimeouts | None = None,
) -> CallTransition:
    """A new call, ringing; the seller has joined. Eligibility was checked by the caller."""
    _require_aware(now)
    if not (call_id and thread_id and seller_id and buyer_id):
        raise ValueError("call_id, thread_id, seller_id and buyer_id must be non-empty")
    if seller_id == buyer_id:
        raise ValueError("the seller and the buyer must be different users")
    state = CallState(
        call_id=call_id,
        thread_id=thread_id,
        seller=ParticipantPresence(seller_id, Role.SELLER, joined_at=now),
        buyer=ParticipantPresence(buyer_id, Role.BUYER),
        phase=CallPhase.RINGING,
        started_at=now,
        timeouts=timeouts if timeouts is not None else CallTimeouts(),
    )
    return CallTransition(
        state,
        (
            PhaseChanged(call_id, None, CallPhase.RINGING, now),
            CallEvent(call_id, CallEventKind.JOINED, now, seller_id),
        ),
    )


def advance(state: CallState, event: CallInput, now: datetime) -> CallTransition:
    """Apply one input at ``now``; raises ``CallStateError`` subclasses for illegal ones."""
    _require_aware(now)
    if not isinstance(event, EligibilityLost | MediaUnavailable | ServerShutdown | DeadlinesDue):
        # Strangers learn nothing about the call, not even its phase.
        state.participant(event.user_id)
    match event:
        case Accept(user_id=user_id):
            return _accept(state, user_id, now)
        case Decline(user_id=user_id):
            _require_phase(state, "decline", CallPhase.RINGING)
            _require_role(state, user_id, Role.BUYER, "decline")
            return _end(state, now, EndReason.DECLINED, by=user_id)
        case Cancel(user_id=user_id):
            _require_phase(state, "cancel", CallPhase.RINGING)
            _require_role(state, user_id, Role.SELLER, "cancel")
            return _end(state, now, EndReason.CANCELLED, by=user_id)
        case HangUp(user_id=user_id):
            _require_phase(state, "hang up", CallPhase.CONNECTING, CallPhase.ACTIVE)
            _require_in_call(state, user_id)
            return _end(state, now, EndReason.HUNG_UP, by=user_id)
        case LegStateChanged(user_id=user_id, leg=leg):
            return _leg_state_changed(state, user_id, leg, now)
        case SocketClosed(user_id=user_id):
            _require_phase(state, "lose a participant of", *LIVE_PHASES)
            p = _require_in_call(state, user_id)
            return _lose(state, replace(p, socket_lost=True), "ws_closed", now)
        case SocketAttached(user_id=user_id):
            _require_phase(state, "reconnect to", *LIVE_PHASES)
            p = _require_in_call(state, user_id)
            if not p.socket_lost:
                return CallTransition(state)
            return _maybe_back(state, replace(p, socket_lost=False), now)
        case MediaStateChanged(user_id=user_id, audio=audio, video=video):
            return _media_state(state, user_id, audio, video, now)
        case ChatPosted(user_id=user_id, message_id=message_id, flags=flags):
            _require_phase(state, "chat in", CallPhase.CONNECTING, CallPhase.ACTIVE)
            _require_in_call(state, user_id)
            chat = CallEvent(
                state.call_id, CallEventKind.CHAT, now, user_id, message_id, tuple(flags)
            )
            return CallTransition(state, (chat,))
        case Reported(user_id=user_id, reason=reason):
            state.participant(user_id)
            report = CallEvent(state.call_id, CallEventKind.REPORT, now, user_id, reason)
            return CallTransition(state, (report,))
        case EligibilityLost(reason=reason):
            _require_phase(state, "end as ineligible", *LIVE_PHASES)
            if not reason:
                raise ValueError("an eligibility reason code is required")
            return _end(state, now, EndReason.INELIGIBLE, detail=reason)
        case MediaUnavailable(detail=detail):
            _require_phase(state, "fail media in", *LIVE_PHASES)
            return _end(state, now, EndReason.FAILED, detail=detail.value)
        case ServerShutdown():
            _require_phase(state, "shut down", *LIVE_PHASES)
            return _end(state, now, EndReason.SERVER_SHUTDOWN)
        case DeadlinesDue():
            return _deadlines_due(state, now)
        case _:
            assert_never(event)


def _accept(state: CallState, user_id: str, now: datetime) -> CallTransition:
    _require_phase(state, "accept", CallPhase.RINGING)
    buyer = _require_role(state, user_id, Role.BUYER, "accept")
    new = replace(
        state,
        buyer=replace(buyer, joined_at=now),
        phase=CallPhase.CONNECTING,
        answered_at=now,
    )
    changes: list[Change] = [
        CallEvent(state.call_id, CallEventKind.JOINED, now, user_id),
        PhaseChanged(state.call_id, state.phase, CallPhase.CONNECTING, now),
    ]
    # The buyer's leg cannot be up yet, so accepting never goes straight to active.
    return CallTransition(new, tuple(changes))


def _leg_state_changed(
    state: CallState, user_id: str, leg: LegState, now: datetime
) -> CallTransition:
    _require_phase(state, "report a media leg of", *LIVE_PHASES)
    p = _require_in_call(state, user_id)
    match leg:
        case LegState.CONNECTED:
            connected = replace(p, media_lost=False, media_ever_connected=True)
            return _maybe_back(state, connected, now)
        case LegState.FAILED if not p.media_ever_connected:
            detail = FailureDetail.ICE_FAILED.value
            return _end(state, now, EndReason.FAILED, by=user_id, detail=detail)
        case LegState.DISCONNECTED:
            return _lose(state, replace(p, media_lost=True), "ice_disconnected", now)
        case LegState.FAILED | LegState.CLOSED:
            return _lose(state, replace(p, media_lost=True), f"media_{leg.value}", now)
        case _:
            assert_never(leg)


def _lose(state: CallState, p: ParticipantPresence, cause: str, now: datetime) -> CallTransition:
    """``p`` (with what they lost marked) is lost from ``now``, unless they already were:
    then the grace clock goes on from the first loss."""
    if p.lost:
        return CallTransition(_with(state, p))
    lost = replace(p, lost_since=now, media_connected=False)
    event = CallEvent(state.call_id, CallEventKind.RECONNECTING, now, p.user_id, cause)
    return CallTransition(_with(state, lost), (event,))


def _maybe_back(state: CallState, p: ParticipantPresence, now: datetime) -> CallTransition:
    """``p`` got a socket or a media leg back: back once neither is lost; media-connected
    once back with the leg up; and connecting -> active once both legs are connected."""
    changes: list[Change] = []
    if p.lost and not (p.socket_lost or p.media_lost):
        p = replace(p, lost_since=None)
        changes.append(CallEvent(state.call_id, CallEventKind.RECONNECTED, now, p.user_id))
    if not p.lost and p.media_up:
        p = replace(p, media_connected=True)
    state = _with(state, p)
    if state.phase is CallPhase.CONNECTING and all(x.media_connected for x in state.participants):
        state = replace(state, phase=CallPhase.ACTIVE, active_at=now)
        changes.append(PhaseChanged(state.call_id, CallPhase.CONNECTING, CallPhase.ACTIVE, now))
    return CallTransition(state, tuple(changes))


def _media_state(
    state: CallState, user_id: str, audio: bool, video: bool, now: datetime
) -> CallTransition:
    _require_phase(state, "change media state in", *LIVE_PHASES)
    p = _require_in_call(state, user_id)
    changes: list[Change] = []
    if audio != p.audio:
        kind = CallEventKind.UNMUTED if audio else CallEventKind.MUTED
        changes.append(CallEvent(state.call_id, kind, now, user_id))
    if video != p.video:
        kind = CallEventKind.CAMERA_ON if video else CallEventKind.CAMERA_OFF
        changes.append(CallEvent(state.call_id, kind, now, user_id))
    if not changes:
        return CallTransition(state)
    return CallTransition(_with(state, replace(p, audio=audio, video=video)), tuple(changes))


def _deadlines_due(state: CallState, now: datetime) -> CallTransition:
    # A timer that fires after the call ended (a race the owner cannot always avoid) or
    # early (clock granularity) is not an error: nothing is due, nothing changes.
    due = next((d for d in state.deadlines() if d.at <= now), None)
    if due is None:
        return CallTransition(state)
    match due.kind:
        case DeadlineKind.RING:
            return _end(state, now, EndReason.MISSED)
        case DeadlineKind.CONNECT:
            return _end(state, now, EndReason.FAILED, detail=FailureDetail.CONNECT_TIMEOUT.value)
        case DeadlineKind.RECONNECT_GRACE:
            return _end(
                state,
                now,
                EndReason.FAILED,
                by=due.user_id,
                detail=FailureDetail.PARTICIPANT_LOST.value,
            )
        case _:
            assert_never(due.kind)


def _end(
    state: CallState,
    now: datetime,
    reason: EndReason,
    *,
    by: str | None = None,
    detail: str | None = None,
) -> CallTransition:
    end = CallEnd(reason, now, by, detail)
    changes: list[Change] = []
    # Whoever caused the end leaves first, so the stored events read in causal order.
    leaving = sorted((p for p in state.participants if p.in_call), key=lambda p: p.user_id != by)
    for p in leaving:
        state = _with(state, replace(p, left_at=now, media_connected=False))
        changes.append(CallEvent(state.call_id, CallEventKind.LEFT, now, p.user_id, reason.value))
    changes.append(PhaseChanged(state.call_id, state.phase, CallPhase.ENDED, now, end))
    return CallTransition(replace(state, phase=CallPhase.ENDED, end=end), tuple(changes))


# --- guards ----------------------------------------------------------------------------


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _require_phase(state: CallState, action: str, *allowed: CallPhase) -> None:
    if state.phase not in allowed:
        described = state.describe()
        suffix = f" ({described})" if state.end is not None else ""
        raise IllegalCallTransition(
            f"cannot {action} a call that is {state.phase.value}{suffix}",
            phase=state.phase,
            end=state.end,
        )


def _require_role(state: CallState, user_id: str, role: Role, action: str) -> ParticipantPresence:
    p = state.participant(user_id)
    if p.role is not role:
        raise CallActionNotAllowed(
            f"only the {role.value} may {action} a call; user {user_id} is the {p.role.value}"
            f" (call is {state.describe()})",
            phase=state.phase,
            end=state.end,
        )
    return p


def _require_in_call(state: CallState, user_id: str) -> ParticipantPresence:
    p = state.participant(user_id)
    if not p.in_call:
        raise CallActionNotAllowed(
            f"user {user_id} is not in this call (call is {state.describe()})",
            phase=state.phase,
            end=state.end,
        )
    return p


def _with(state: CallState, p: ParticipantPresence) -> CallState:
    if p.role is Role.SELLER:
        return replace(state, seller=p)
    return replace(state, buyer=p)
