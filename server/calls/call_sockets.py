"""Which socket is each participant's call socket, as sockets come and go.

A participant's call socket is the one that started or accepted the call, or last
re-attached (a new connection of theirs, or any socket of theirs sending a message for the
call). When it closes, or a socket of theirs attaches again, the call's state machine is
told (``SocketClosed`` / ``SocketAttached``) and decides whether they are lost or back; a
socket that re-attaches is caught up on the call (its state, the other person's media and
connection). A socket of a buyer whose call is ringing rings too.
"""

from __future__ import annotations

import contextlib
import logging

from server.calls.lifecycle import CallLifecycle
from server.calls.live_call import LiveCall
from server.calls.notifications import (
    CallNotifier,
    CallStateChanged,
    PeerConnectionState,
    PeerMediaState,
)
from server.calls.registry import LiveCallRegistry
from server.calls.seams import CallSocket
from signaling.call_state import CallPhase, CallStateError, SocketAttached, SocketClosed

log = logging.getLogger(__name__)


class CallSockets:
    def __init__(
        self, *, calls: LiveCallRegistry, lifecycle: CallLifecycle, notify: CallNotifier
    ) -> None:
        self._calls = calls
        self._lifecycle = lifecycle
        self._notify = notify

    async def attach(self, live: LiveCall, socket: CallSocket) -> None:
        """Make ``socket`` the participant's call socket; a lost participant may be back."""
        user_id = socket.user_id
        async with live.lock:
            if not live.state.is_live:
                return
            p = live.state.participant(user_id)
            if not p.in_call:
                return
            live.call_sockets[user_id] = socket
            if not p.socket_lost:
                return
            await self._lifecycle.apply_locked(live, SocketAttached(user_id))
        log.info("call=%s conn=%s re-attached", live.call_id, socket.id)

    async def socket_opened(self, socket: CallSocket) -> None:
        """A new socket of a person whose call socket dropped re-attaches to the call; one
        of a buyer whose call is ringing rings too."""
        live = self._calls.of_user(socket.user_id)
        if live is None:
            return
        state = live.state
        if (
            state.phase is CallPhase.RINGING
            and socket.user_id == state.buyer.user_id
            and live.incoming is not None
        ):
            self._notify.to_socket(socket, live.incoming)
            return
        if not state.participant(socket.user_id).socket_lost:
            return
        try:
            await self.attach(live, socket)
        except CallStateError:
            return
        state = live.state
        if state.is_live:
            self._notify.to_socket(socket, CallStateChanged.of(state))
            peer = state.peer_of(socket.user_id)
            if peer.in_call:
                self._notify.to_socket(socket, PeerMediaState.of(state, peer.user_id))
                if peer.lost:
                    self._notify.to_socket(
                        socket, PeerConnectionState(live.call_id, peer.user_id, reconnecting=True)
                    )

    async def socket_closed(self, socket: CallSocket) -> None:
        for live in self._calls.calls():
            if not live.is_call_socket(socket):
                continue
            async with live.lock:
                if not live.is_call_socket(socket) or not live.state.is_live:
                    continue
                live.call_sockets[socket.user_id] = None
                log.info("call=%s conn=%s call socket closed", live.call_id, socket.id)
                with contextlib.suppress(CallStateError):
                    await self._lifecycle.apply_locked(live, SocketClosed(socket.user_id))
