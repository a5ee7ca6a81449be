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
DB = web.AppKey("db", async_sessionmaker[AsyncSession])
ELIGIBILITY_WATCH: web.AppKey[EligibilityWatch] = web.AppKey("eligibility_watch")

# Named async checks that /readyz runs besides the database (the recording storage...).
READINESS_CHECKS = web.AppKey("readiness_checks", dict[str, Callable[[], Awaitable[None]]])

if TYPE_CHECKING:
    from server.recording_service import RecordingService, RecordingStore
    from server.retention_job import RetentionJob

RECORDING_STORAGE: web.AppKey[RecordingStore] = web.AppKey("recording_storage")
RECORDINGS: web.AppKey[RecordingService] = web.AppKey("recordings")
RETENTION_JOB: web.AppKey[RetentionJob] = web.AppKey("retention_job")

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

CALLS: web.AppKey[CallService] = web.AppKey("calls")
WS_PRESENCE: web.AppKey[PresenceRegistry] = web.AppKey("ws_presence")
WS_DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("ws_dispatcher")

if TYPE_CHECKING:
    from server.media.call_media import MediaHost

# Where calls' media runs (server.media): the node's media workers, or this process.
MEDIA_HOST: web.AppKey[MediaHost] = web.AppKey("media_host")

# The recording seam (in-process media only, for tests). Optional: ``factory(call_id)``
# answers the call's frame sink (an ``EncodedFrameSink`` with ``async aclose()``), sync or
# async, or None; read when each call becomes active. Hooks ``hook(call_id, recordings)``
# run after a call ended and its media closed.
RECORDING_SINK_FACTORY: web.AppKey[Callable[[str], object]] = web.AppKey("recording_sink_factory")
CALL_ENDED_HOOKS: web.AppKey[list[CallEndedHook]] = web.AppKey("call_ended_hooks")
