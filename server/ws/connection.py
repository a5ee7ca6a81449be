"""One open call WebSocket: a bounded outbound queue drained by one writer task.

Nobody writes to the socket but the writer, so a slow client never blocks whoever sends
to it (the call service sends while holding a call's lock). A client that does not read
fast enough is dropped with ``4002``: at once when the queue is full, or when it stayed
above ``OUTBOUND_QUEUE_PEAK`` for ``OUTBOUND_QUEUE_PEAK_SECONDS``. Limits are read from
``ws_limits`` when the connection opens, so tests can patch them small.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from aiohttp import web
from pydantic import BaseModel

from server.ws.socket_counters import SocketCounters
from signaling import ws_limits
from signaling.ws_limits import CloseCode
from signaling.ws_protocol import dump_message

log = logging.getLogger(__name__)


class Connection:
    """Owned by the socket loop, which calls ``start`` and, at the end, ``finish``."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        connection_id: str,
        user_id: str,
        base_url: str,
        abort: Callable[[], None],
        counters: SocketCounters | None = None,
        session_id: str = "",
    ) -> None:
        self._ws = ws
        self._counters = counters or SocketCounters()
        self._abort = abort
        """Drops the TCP connection without a close frame (a client that will not close)."""
        self._id = connection_id
        self._user_id = user_id
        self.session_id = session_id
        """The sign-in session this socket rides on: when it ends, the socket closes (4001)."""
        self.base_url = base_url
        """Our origin as this client reached it: join links are built on it."""
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=ws_limits.OUTBOUND_QUEUE_MAX)
        self._peak = ws_limits.OUTBOUND_QUEUE_PEAK
        self._peak_seconds = ws_limits.OUTBOUND_QUEUE_PEAK_SECONDS
        self._peak_timer: asyncio.TimerHandle | None = None
        self._writer: asyncio.Task[None] | None = None
        self._receiving: asyncio.Future[aiohttp.WSMessage] | None = None
        self._finished = asyncio.Event()
        self._close_reason = ""
        self._close_flush = True
        self.close_code: int | None = None
        self.sent = 0

    @property
    def id(self) -> str:
        return self._id

    @property
    def user_id(self) -> str:
        return self._user_id

    @property
    def is_open(self) -> bool:
        return self.close_code is None and not self._ws.closed

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(
            self._write(), name=f"ws-writer-{self._id}"
        )

    def send(self, message: BaseModel) -> bool:
        return self.send_text(dump_message(message))

    def send_text(self, text: str) -> bool:
        """Queue a message already in its wire form (relayed from another node)."""
        if not self.is_open:
            return False
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("conn=%s outbound queue full: dropping a slow client", self._id)
            self._drop_slow_client()
            return False
        if self._queue.qsize() > self._peak and self._peak_timer is None:
            self._peak_timer = asyncio.get_running_loop().call_later(
                self._peak_seconds, self._check_peak
            )
        return True

    def _check_peak(self) -> None:
        self._peak_timer = None
        if self.is_open and self._queue.qsize() > self._peak:
            log.warning("conn=%s outbound queue stayed high: dropping a slow client", self._id)
            self._drop_slow_client()

    def _drop_slow_client(self) -> None:
        self._counters.slow_consumer_closes += 1
        self.close(CloseCode.SLOW_CONSUMER, "too slow", flush=False)

    async def _write(self) -> None:
        while True:
            text = await self._queue.get()
            try:
                await self._ws.send_str(text)
            except (ConnectionError, RuntimeError):
                # The transport went away; the socket loop sees the close and cleans up.
                return
            finally:
                self._queue.task_done()
            self.sent += 1

    async def receive(self) -> aiohttp.WSMessage | None:
        """The next frame, or None once ``close`` was called (it interrupts the wait)."""
        if self.close_code is not None:
            return None
        self._receiving = asyncio.ensure_future(self._ws.receive())
        try:
            return await self._receiving
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.close_code is not None and current is not None and not current.cancelling():
                return None
            raise
        finally:
            self._receiving = None

    def close(self, code: int, reason: str = "", *, flush: bool = True) -> None:
        """Ask for a close with ``code`` (once); ``flush`` sends what is queued first.

        The socket loop stops reading and ``finish`` does the closing handshake: aiohttp
        skips waiting for the client's close frame when ``close()`` races a ``receive()``.
        """
        if self.close_code is not None or self._ws.closed:
            return
        self.close_code = code
        self._close_reason = reason
        self._close_flush = flush
        if not flush:
            self._cancel_writer()
        if self._receiving is not None:
            self._receiving.cancel()

    async def finish(self) -> None:
        """Complete a requested close (handshake, bounded) and stop the writer. Idempotent."""
        if self._peak_timer is not None:
            self._peak_timer.cancel()
            self._peak_timer = None
        try:
            if self.close_code is not None and not self._ws.closed:
                await self._close_handshake(self.close_code)
        finally:
            await self._stop_writer()
            self._finished.set()

    async def _close_handshake(self, code: int) -> None:
        try:
            async with asyncio.timeout(ws_limits.CLOSE_TIMEOUT_SECONDS):
                writer = self._writer
                if self._close_flush and writer is not None and not writer.done():
                    await self._queue.join()
                await self._stop_writer()
                await self._ws.close(
                    code=code, message=self._close_reason.encode(), drain=self._close_flush
                )
        except TimeoutError:
            log.info("conn=%s did not complete the close handshake; dropped", self._id)
            self._abort()
        except (ConnectionError, RuntimeError):
            self._abort()

    async def wait_finished(self) -> None:
        """Until ``finish`` has run (callers bound the wait)."""
        await self._finished.wait()

    def _cancel_writer(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()

    async def _stop_writer(self) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
        if writer is not None:
            await asyncio.gather(writer, return_exceptions=True)
