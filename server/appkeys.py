"""Typed application state (aiohttp ``AppKey``s), shared by every route module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.settings import Settings

if TYPE_CHECKING:
    from server.eligibility_watch import EligibilityWatch

SETTINGS = web.AppKey("settings", Settings)

if TYPE_CHECKING:
    from server.connection_limits import ConnectionGuard

# This node's open HTTP connections and their bounds (server/connection_limits.py).
CONNECTION_GUARD: web.AppKey[ConnectionGuard] = web.AppKey("connection_guard")
DB = web.AppKey("db", async_sessionmaker[AsyncSession])
ELIGIBILITY_WATCH: web.AppKey[EligibilityWatch] = web.AppKey("eligibility_watch")

# Called with a session's id once it ended (sign-out, replaced by another sign-in): the
# call WebSocket closes that session's sockets with 4001.
SESSION_ENDED_HOOKS = web.AppKey("session_ended_hooks", list[Callable[[str], None]])

# Named async checks that /readyz runs besides the database (the recording storage...).
READINESS_CHECKS = web.AppKey("readiness_checks", dict[str, Callable[[], Awaitable[None]]])

if TYPE_CHECKING:
    from server.recording_service import RecordingService, RecordingStore
    from server.retention_job import RetentionJob
    from server.review.service import ReviewLifecycle

RECORDING_STORAGE: web.AppKey[RecordingStore] = web.AppKey("recording_storage")
RECORDINGS: web.AppKey[RecordingService] = web.AppKey("recordings")
RETENTION_JOB: web.AppKey[RetentionJob] = web.AppKey("retention_job")
REVIEWS: web.AppKey[ReviewLifecycle] = web.AppKey("reviews")

if TYPE_CHECKING:
    from server.webhooks.sender import WebhookSender

# Set only when INBOXCALL_WEBHOOK_URL is.
WEBHOOK_SENDER: web.AppKey[WebhookSender] = web.AppKey("webhook_sender")

# --- calls and the call WebSocket (server/calls, server/ws) ---

if TYPE_CHECKING:
    from server.calls.seams import CallEndedHook
    from server.calls.service import CallService
    from server.ws.dispatch import Dispatcher
    from server.ws.presence import PresenceRegistry
    from server.ws.socket_counters import SocketCounters

CALLS: web.AppKey[CallService] = web.AppKey("calls")
WS_PRESENCE: web.AppKey[PresenceRegistry] = web.AppKey("ws_presence")
WS_DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("ws_dispatcher")
WS_COUNTERS: web.AppKey[SocketCounters] = web.AppKey("ws_counters")

if TYPE_CHECKING:
    from server.cluster.bus import Bus
    from server.cluster.router import CallRouter
    from server.media.call_media import MediaHost

# The bus between nodes (in-process for one node) and this node's id (server.cluster).
BUS: web.AppKey[Bus] = web.AppKey("bus")
NODE_ID = web.AppKey("node_id", str)
CALL_ROUTER: web.AppKey[CallRouter] = web.AppKey("call_router")

# Where calls' media runs (server.media): the node's media workers, or this process.
MEDIA_HOST: web.AppKey[MediaHost] = web.AppKey("media_host")

# The recording seam (in-process media only, for tests). Optional: ``factory(call_id)``
# answers the call's frame sink (an ``EncodedFrameSink`` with ``async aclose()``), sync or
# async, or None; read when each call becomes active. Hooks ``hook(call_id, recordings)``
# run after a call ended and its media closed.
RECORDING_SINK_FACTORY: web.AppKey[Callable[[str], object]] = web.AppKey("recording_sink_factory")
CALL_ENDED_HOOKS: web.AppKey[list[CallEndedHook]] = web.AppKey("call_ended_hooks")

# --- metrics (server/metrics), set only when INBOXCALL_METRICS_PORT is ---

if TYPE_CHECKING:
    from server.metrics.media import MediaCollector

# Where media counters from other processes join the node's metrics (``add_source``).
MEDIA_METRICS: web.AppKey[MediaCollector] = web.AppKey("media_metrics")
