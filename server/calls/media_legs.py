"""The media side of live calls: opening a call's media, offers, ICE candidates, the
camera and microphone switches, and the media host's reports turned into call inputs.

The media host calls back on the serving loop (a leg's state, the call's media failing);
each callback becomes one input (``LegStateChanged``, ``MediaUnavailable``) applied in a
task the call owns. What a leg state means for the call is the state machine's to decide.
"""

from __future__ import annotations

import logging

from server.calls.call_sockets import CallSockets
from server.calls.errors import CallError, no_such_call
from server.calls.lifecycle import CallLifecycle
from server.calls.live_call import LiveCall
from server.calls.notifications import (
    CallNotifier,
    PeerConnectionQuality,
    PeerMediaState,
    VideoPaused,
)
from server.calls.seams import CallSocket
from server.media.call_media import CallMedia, MediaHost, MediaUnavailableError
from signaling.call_state import (
    CallActionNotAllowed,
    CallPhase,
    CallStateError,
    FailureDetail,
    LegState,
    LegStateChanged,
    MediaStateChanged,
    NotACallParticipant,
    Role,
)
from signaling.ws_protocol import ErrorCode, QualityLevel

log = logging.getLogger(__name__)

NO_CAPACITY_MESSAGE = "calls cannot be placed right now; try again in a moment"


class MediaLegs:
    def __init__(
        self,
        *,
        media: MediaHost,
        lifecycle: CallLifecycle,
        sockets: CallSockets,
        notify: CallNotifier,
    ) -> None:
        self._media = media
        self._lifecycle = lifecycle
        self._sockets = sockets
        self._notify = notify

    async def open(self, call_id: str, holder: list[LiveCall]) -> CallMedia:
        """The new call's media; its reports reach ``holder[0]`` once the call exists."""
        try:
            return await self._media.open_call(
                call_id,
                on_leg_state=lambda pid, state: self._on_leg_state(holder, pid, state),
                on_failure=lambda detail: self._on_media_failure(holder, detail),
                on_notice=lambda pid, notice: self._on_media_notice(holder, pid, notice),
            )
        except MediaUnavailableError as exc:
            log.warning("call=%s no media capacity: %s", call_id, exc)
            # The host's own words when it has them (no room to record the call, say).
            raise CallError(ErrorCode.UNAVAILABLE, exc.words or NO_CAPACITY_MESSAGE) from None

    # --- from the participants ---------------------------------------------------------

    async def offer(self, socket: CallSocket, call_id: str, sdp: str) -> str:
        live = await self._lifecycle.live_for(socket.user_id, call_id)
        _require_media_allowed(live, socket.user_id, "send an offer")
        answer = await live.media.accept_offer(socket.user_id, sdp)
        await self._sockets.attach(live, socket)
        return answer

    async def add_candidate(
        self,
        socket: CallSocket,
        call_id: str,
        candidate: str | None,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        live = await self._lifecycle.live_for(socket.user_id, call_id)
        _require_media_allowed(live, socket.user_id, "send ICE candidates")
        if not candidate and sdp_mid is None and sdp_mline_index is None:
            # End of candidates applies to the whole (bundled) transport.
            sdp_mline_index = 0
        await live.media.add_remote_candidate(
            socket.user_id, candidate or "", sdp_mid, sdp_mline_index
        )

    async def set_media_state(
        self, socket: CallSocket, call_id: str, *, audio: bool, video: bool
    ) -> None:
        live = await self._lifecycle.live_for(socket.user_id, call_id)
        user_id = socket.user_id
        async with live.lock:
            await self._lifecycle.apply_locked(live, MediaStateChanged(user_id, audio, video))
            await live.media.set_media_enabled(user_id, "audio", audio)
            await live.media.set_media_enabled(user_id, "video", video)
            peer = live.state.peer_of(user_id)
            if peer.in_call:
                self._notify.to_user(peer.user_id, PeerMediaState.of(live.state, user_id))
        await self._sockets.attach(live, socket)

    async def relay_connection_quality(
        self, socket: CallSocket, call_id: str, level: QualityLevel
    ) -> None:
        """A participant's own link quality, passed on to the other one (nothing stored)."""
        live = await self._lifecycle.live_for(socket.user_id, call_id)
        _require_media_allowed(live, socket.user_id, "report connection quality")
        peer = live.state.peer_of(socket.user_id)
        if peer.in_call:
            self._notify.to_user(
                peer.user_id, PeerConnectionQuality(call_id, socket.user_id, level)
            )

    # --- from the media host ------------------------------------------------------------

    def _on_leg_state(self, holder: list[LiveCall], user_id: str, leg_state: str) -> None:
        """The media host's callback (on the loop, must not block): handle it in a task."""
        if not holder or holder[0].closing:
            return
        live = holder[0]
        live.spawn(
            self._leg_state_changed(live, user_id, leg_state),
            name=f"call-leg-state-{live.call_id}",
        )

    async def _leg_state_changed(self, live: LiveCall, user_id: str, leg_state: str) -> None:
        try:
            leg = LegState(leg_state)
        except ValueError:
            return  # new, checking, connecting: nothing to decide yet
        async with live.lock:
            if not live.state.is_live or live.closing:
                return
            role = live.state.participant(user_id).role
            log.info("call=%s %s's media leg %s", live.call_id, role, leg_state)
            try:
                await self._lifecycle.apply_locked(live, LegStateChanged(user_id, leg))
            except CallStateError as exc:
                log.info("call=%s leg state %s ignored: %s", live.call_id, leg_state, exc)

    def _on_media_notice(self, holder: list[LiveCall], user_id: str, notice: str) -> None:
        """The bridge paused (or resumed) the video ``user_id`` receives: tell both."""
        if holder and not holder[0].closing and holder[0].state.is_live:
            live = holder[0]
            paused = VideoPaused(live.call_id, user_id, paused=notice == "video_paused")
            self._notify.to_users((p.user_id for p in live.state.participants), paused)

    def _on_media_failure(self, holder: list[LiveCall], detail: FailureDetail) -> None:
        """The media host's callback (on the loop, must not block): end the call in a task."""
        if not holder or holder[0].closing:
            return
        live = holder[0]
        live.spawn(
            self._lifecycle.media_failed(live, detail), name=f"call-media-failed-{live.call_id}"
        )


def _require_media_allowed(live: LiveCall, user_id: str, action: str) -> None:
    """Offers and candidates: a participant in the call; while ringing, the seller."""
    state = live.state
    try:
        p = state.participant(user_id)
    except NotACallParticipant:
        raise no_such_call() from None
    if not state.is_live:
        raise CallError(ErrorCode.CALL_NOT_LIVE, f"the call has ended ({state.describe()})")
    if not p.in_call or (state.phase is CallPhase.RINGING and p.role is not Role.SELLER):
        raise CallActionNotAllowed(
            f"cannot {action} before joining the call (call is {state.describe()})",
            phase=state.phase,
            end=state.end,
        )
