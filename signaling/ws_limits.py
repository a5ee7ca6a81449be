"""Every bound of the call WebSocket, in one place, so the server and the docs agree.

``docs/websocket-protocol.md`` quotes these values; ``tests/unit/test_ws_protocol.py``
checks that it still does. Tests that need small limits patch these names (the server
must read them at use, ``ws_limits.MAX_FRAME_BYTES``, not bind them at import).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

PROTOCOL_VERSION: Final = 1
"""Bumped only for changes an existing client would misread."""

WS_PATH: Final = "/api/v1/ws"

# --- frames ----------------------------------------------------------------------------

MAX_FRAME_BYTES: Final = 128 * 1024
"""Largest text frame the protocol accepts (UTF-8 bytes); larger gets ``message_too_large``."""

TRANSPORT_MAX_FRAME_BYTES: Final = 2 * MAX_FRAME_BYTES
"""aiohttp's ``max_msg_size``: a frame beyond this is not read; the socket closes with 1009.

Between ``MAX_FRAME_BYTES`` and this the frame is read and answered with an error, so a
client that overshoots a little learns why instead of seeing its socket drop.
"""

# --- fields ----------------------------------------------------------------------------

MAX_SDP_CHARS: Final = 64 * 1024
MAX_CHAT_TEXT_CHARS: Final = 2000
MAX_CANDIDATE_CHARS: Final = 1024
MAX_SDP_MID_CHARS: Final = 32
MAX_SDP_MLINE_INDEX: Final = 255
MAX_ID_CHARS: Final = 128
"""Host ids (users, threads) and our call / message ids."""
MAX_DISPLAY_NAME_CHARS: Final = 100
MAX_REPORT_DETAILS_CHARS: Final = 1000
MAX_ERROR_MESSAGE_CHARS: Final = 500
MAX_URL_CHARS: Final = 2048
MAX_PRESENCE_THREADS: Final = 200
"""Thread ids in one ``subscribe_presence``; a later subscription replaces the earlier one."""
MAX_FLAGS: Final = 16
MAX_FLAG_CHARS: Final = 64
MAX_REQUEST_ID: Final = 2**53 - 1
"""Largest ``id`` a client may send: JavaScript's largest exact integer."""

# --- rate ------------------------------------------------------------------------------

RATE_LIMIT_PER_SECOND: Final = 50.0
RATE_LIMIT_BURST: Final = 100
RATE_LIMIT_STRIKES_BEFORE_CLOSE: Final = 200
"""Rate-limited messages in a row (none accepted in between) before closing with 1008."""

# --- outbound queue (one writer task per connection drains it) -------------------------

OUTBOUND_QUEUE_MAX: Final = 512
"""Messages waiting for a slow client; at this size the connection is closed (4002)."""
OUTBOUND_QUEUE_PEAK: Final = 128
"""Above this size a timer starts; still above it ``OUTBOUND_QUEUE_PEAK_SECONDS`` later -> 4002."""
OUTBOUND_QUEUE_PEAK_SECONDS: Final = 5.0

# --- time ------------------------------------------------------------------------------

HANDSHAKE_TIMEOUT_SECONDS: Final = 10.0
"""From the upgrade request arriving to a completed upgrade (session and Origin checked,
``101`` sent). Reading the request line and headers before that is the HTTP server's
business (aiohttp's own limits), not this module's."""
CLOSE_TIMEOUT_SECONDS: Final = 5.0
"""How long the server waits for the client's close frame after sending its own."""
HEARTBEAT_INTERVAL_SECONDS: Final = 20.0
"""The server sends a WebSocket protocol ping this often (aiohttp ``heartbeat``)."""
HEARTBEAT_TIMEOUT_SECONDS: Final = 10.0
"""No pong within this after a ping -> the server drops the connection.

Equal to ``HEARTBEAT_INTERVAL_SECONDS / 2`` because that is what aiohttp derives from
``heartbeat``; keep them in step if either changes.
"""
CLIENT_PING_INTERVAL_SECONDS: Final = 20.0
"""A client sends an application ``ping`` this often while idle (browsers cannot see
protocol pings, so this is how a page learns its socket died)."""
CLIENT_PONG_TIMEOUT_SECONDS: Final = 10.0

# --- connections -----------------------------------------------------------------------

MAX_CONNECTIONS_PER_USER: Final = 10
"""Open sockets per signed-in user (tabs, devices); one more is closed with 4003."""

SESSION_CHECK_INTERVAL_SECONDS: Final = 15.0
"""How often the server re-checks the sessions of open sockets; a socket whose session
ended elsewhere (another node) is closed with 4001 within this. Sign-out on the same node
and expiry close it at once."""


class CloseCode(IntEnum):
    """WebSocket close codes the server sends."""

    NORMAL = 1000
    """The server closed with nothing wrong and nothing for the client to do but reconnect."""
    GOING_AWAY = 1001
    """Server shutdown or restart: reconnect with backoff."""
    POLICY_VIOLATION = 1008
    """Kept flooding past the rate limit; or sent something the server will not serve."""
    MESSAGE_TOO_BIG = 1009
    """A frame larger than ``TRANSPORT_MAX_FRAME_BYTES`` (aiohttp closes; not read)."""
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    """The server is at its connection capacity."""
    SESSION_ENDED = 4001
    """The session cookie is no longer valid (signed out, expired): sign in, do not retry."""
    SLOW_CONSUMER = 4002
    """The client did not read fast enough (outbound queue bound): reconnect."""
    TOO_MANY_CONNECTIONS = 4003
    """More than ``MAX_CONNECTIONS_PER_USER`` sockets for this user."""


@dataclass(slots=True)
class MessageRateLimiter:
    """Token bucket for one connection's incoming messages; pure, the caller passes ``now``.

    ``now`` is any monotonic clock in seconds (``loop.time()``); tests pass plain floats.
    """

    rate_per_second: float = RATE_LIMIT_PER_SECOND
    burst: int = RATE_LIMIT_BURST
    strikes_before_close: int = RATE_LIMIT_STRIKES_BEFORE_CLOSE
    _tokens: float | None = None
    _last: float = 0.0
    _strikes: int = 0

    def allow(self, now: float) -> bool:
        """Take one token; ``False`` means answer ``rate_limited`` and drop the message."""
        if self._tokens is None:
            self._tokens = float(self.burst)
        else:
            elapsed = max(0.0, now - self._last)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_second)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._strikes = 0
            return True
        self._strikes += 1
        return False

    @property
    def should_close(self) -> bool:
        """The client kept flooding: close with ``CloseCode.POLICY_VIOLATION``."""
        return self._strikes >= self.strikes_before_close
