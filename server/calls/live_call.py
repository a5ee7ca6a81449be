"""One live call at run time: its state, its media (wherever it runs), timer and tasks.

The call service owns every ``LiveCall``; a ``LiveCall`` owns its tasks (the deadline
timer, leg-state handlers) and cancels and awaits them in ``aclose``. Every input to the
call's state machine is applied under ``lock``, so inputs from sockets, the media bridge,
the timer and eligibility changes never interleave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from recorder import FinalisedRecording
from server.calls.notifications import IncomingCall
from server.calls.seams import CallSocket
from server.clock import utcnow
from server.media.call_media import CallMedia
from server.owned_tasks import OwnedTasks
from signaling.call_state import CallState

log = logging.getLogger(__name__)

# A timer that wakes a hair early would find nothing due and re-arm; wake a hair late.
TIMER_SLACK_SECONDS = 0.005


@dataclass(eq=False)
class LiveCall:
    state: CallState
    media: CallMedia
    join_url: str
    incoming: IncomingCall | None = None
    """The ``incoming_call`` the buyer's sockets got; a socket opened while it rings gets it too."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    call_sockets: dict[str, CallSocket | None] = field(default_factory=dict)
    """Each participant's call socket: the one that started or accepted the call, or last
    re-attached; None once it closed (what that means is the state machine's to say)."""
    closing: bool = False
    epoch: int = 1
    """The fencing epoch this node owns the call under (``calls.owner_epoch``)."""
    recordings: list[FinalisedRecording] = field(default_factory=list)
    """What the call's media host recorded, once ``aclose`` finished."""
    _tasks: OwnedTasks = field(init=False)
    _timer: asyncio.Task[Any] | None = None
    _timer_at: datetime | None = None
    _closed: asyncio.Future[None] | None = None

    def __post_init__(self) -> None:
        self._tasks = OwnedTasks(f"call={self.call_id}")

    @property
    def call_id(self) -> str:
        return self.state.call_id

    def is_call_socket(self, socket: CallSocket) -> bool:
        current = self.call_sockets.get(socket.user_id)
        return current is not None and current.id == socket.id

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any] | None:
        # ``closing`` is set when the call ends, before its teardown closes the tasks:
        # nothing new starts for a call that is going away.
        if self.closing:
            coro.close()
            return None
        return self._tasks.spawn(coro, name=name)

    def arm_timer(self, fire: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """One timer at ``state.next_deadline()``; re-ask after every transition."""
        deadline = self.state.next_deadline()
        current = asyncio.current_task()
        timer = self._timer
        if timer is not None and timer is not current and not timer.done():
            if deadline is not None and deadline.at == self._timer_at:
                return
            timer.cancel()
        self._timer = None
        self._timer_at = None
        if deadline is None or self.closing:
            return
        delay = max(0.0, (deadline.at - utcnow()).total_seconds()) + TIMER_SLACK_SECONDS
        self._timer_at = deadline.at
        self._timer = self.spawn(
            self._fire_after(delay, fire), name=f"call-deadline-{self.call_id}-{deadline.kind}"
        )

    @staticmethod
    async def _fire_after(delay: float, fire: Callable[[], Coroutine[Any, Any, None]]) -> None:
        await asyncio.sleep(delay)
        await fire()

    async def aclose(self) -> None:
        """Cancel and await every task, then close the media (legs and recording).
        Idempotent."""
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        self._closed = asyncio.get_running_loop().create_future()
        self.closing = True
        try:
            await self._tasks.aclose()
            try:
                self.recordings = await self.media.aclose()
            except Exception:
                log.exception("call=%s closing its media failed", self.call_id)
        finally:
            self._closed.set_result(None)
