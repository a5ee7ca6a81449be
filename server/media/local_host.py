"""Media in this process: one ``CallMediaBridge`` per call, recorded once the call is active.

A media worker process runs one of these for the calls placed on it; the serving process
runs one itself only when media workers are switched off (``INBOXCALL_MEDIA_WORKERS=0``,
for tests that look inside the bridge, and for debugging).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from recorder import CallRecorder, FinalisedRecording
from server.media.call_media import (
    CallMediaStats,
    LegStateListener,
    MediaFailureListener,
    MediaNoticeListener,
    MediaUnavailableError,
)
from server.media.staging_space import StagingSpace
from signaling.call_state import FailureDetail
from signaling.media_bridge import BridgeSettings, CallMediaBridge
from signaling.media_sink import EncodedFrameSink, MediaKind

log = logging.getLogger(__name__)

KeyframeRequest = Callable[[str], None]
RecordingFailed = Callable[[str], None]
"""``recording_failed(reason)``: the sink stopped recording mid-call (on the loop)."""


class RecordingSink(EncodedFrameSink, Protocol):
    """The bridge's frame sink for one call; ``aclose`` answers the finished recordings
    (a ``list[FinalisedRecording]``) or anything else when it records nothing."""

    async def aclose(self) -> object: ...


SinkFactory = Callable[[str, KeyframeRequest, RecordingFailed], Awaitable[RecordingSink | None]]
"""``factory(call_id, request_keyframe, recording_failed)``: the call's recording sink, or
None (record nothing)."""


def sink_factory_from(factory: Callable[[str], Any]) -> SinkFactory:
    """Adapt a plain ``factory(call_id)``, sync or async (the test seam), to a SinkFactory."""

    async def make(
        call_id: str, request_keyframe: KeyframeRequest, recording_failed: RecordingFailed
    ) -> RecordingSink | None:
        result = factory(call_id)
        if inspect.isawaitable(result):
            result = await result
        return result  # type: ignore[no-any-return]

    return make


class StagingRecorders:
    """The default sink factory: a ``CallRecorder`` per call under ``staging/<call id>``,
    writing at most ``budget_bytes`` (``INBOXCALL_STAGING_BYTES_PER_CALL``)."""

    def __init__(self, staging: Path, *, budget_bytes: int | None = None) -> None:
        self._staging = staging
        self._budget_bytes = budget_bytes

    async def __call__(
        self, call_id: str, request_keyframe: KeyframeRequest, recording_failed: RecordingFailed
    ) -> CallRecorder:
        directory = self._staging / call_id
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        return CallRecorder(
            call_id,
            directory,
            request_keyframe=request_keyframe,
            max_staging_bytes=self._budget_bytes,
            on_failure=recording_failed,
        )


class LocalCallMedia:
    def __init__(
        self,
        call_id: str,
        bridge: CallMediaBridge,
        make_sink: SinkFactory,
        on_closed: Callable[[], None],
        on_failure: MediaFailureListener | None = None,
    ) -> None:
        self._call_id = call_id
        self._on_closed = on_closed
        self._on_failure = on_failure
        self._recording_failed = False
        self.bridge = bridge
        self._make_sink = make_sink
        self.sink: RecordingSink | None = None
        self._recording = asyncio.Lock()
        self._closed: asyncio.Future[list[FinalisedRecording]] | None = None

    @property
    def call_id(self) -> str:
        return self._call_id

    async def accept_offer(self, participant_id: str, offer_sdp: str) -> str:
        return await self.bridge.accept_offer(participant_id, offer_sdp)

    async def add_remote_candidate(
        self,
        participant_id: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        await self.bridge.add_remote_candidate(participant_id, candidate, sdp_mid, sdp_mline_index)

    async def set_media_enabled(self, participant_id: str, kind: MediaKind, enabled: bool) -> None:
        self.bridge.set_media_enabled(participant_id, kind, enabled)

    def leg_state(self, participant_id: str) -> str | None:
        return self.bridge.leg_state(participant_id)

    async def start_recording(self) -> None:
        async with self._recording:
            if self.sink is not None or self._closed is not None:
                return
            sink = await self._make_sink(
                self._call_id, self.bridge.request_keyframe, self._on_recording_failed
            )
            if sink is None:
                return
            if self._closed is not None:  # closed while the sink was being made
                await sink.aclose()
                return
            self.sink = sink
            self.bridge.attach_sink(sink)
        log.info("call=%s recording started", self._call_id)

    def _on_recording_failed(self, reason: str) -> None:
        """The recorder stopped mid-call: a call that is not recorded must not go on."""
        if self._recording_failed or self._closed is not None:
            return
        self._recording_failed = True
        log.error("call=%s recording failed mid-call (%s): ending the call", self._call_id, reason)
        if self._on_failure is not None:
            self._on_failure(FailureDetail.RECORDING_FAILED)

    async def stats(self) -> CallMediaStats:
        recorder = self.sink.stats() if isinstance(self.sink, CallRecorder) else None
        return CallMediaStats(bridge=self.bridge.stats(), recorder=recorder)

    async def aclose(self) -> list[FinalisedRecording]:
        if self._closed is not None:
            return await asyncio.shield(self._closed)
        self._closed = asyncio.get_running_loop().create_future()
        recordings: list[FinalisedRecording] = []
        try:
            try:
                await self.bridge.aclose()
            except Exception:
                log.exception("call=%s closing the media bridge failed", self._call_id)
            async with self._recording:
                sink = self.sink
            if sink is not None:
                try:
                    result = await sink.aclose()
                except Exception:
                    # What is on disk stays in staging; start-up recovery stores it.
                    log.exception("call=%s finishing the recording failed", self._call_id)
                else:
                    if isinstance(result, list):
                        recordings = [r for r in result if isinstance(r, FinalisedRecording)]
        finally:
            self._closed.set_result(recordings)
            self._on_closed()
        return recordings


class LocalMediaHost:
    def __init__(
        self,
        sink_factory: Callable[[], SinkFactory],
        *,
        bridge_settings: BridgeSettings | None = None,
        staging_space: StagingSpace | None = None,
    ) -> None:
        # Looked up per call: the app's recording seam may be set after the host exists.
        self._sink_factory = sink_factory
        self._bridge_settings = bridge_settings or BridgeSettings()
        self._staging_space = staging_space
        self.calls: dict[str, LocalCallMedia] = {}
        self._closing = False

    async def open_call(
        self,
        call_id: str,
        *,
        on_leg_state: LegStateListener,
        on_failure: MediaFailureListener,
        on_notice: MediaNoticeListener | None = None,
    ) -> LocalCallMedia:
        if self._closing:
            raise MediaUnavailableError("the media host is shutting down")
        if call_id in self.calls:
            raise ValueError(f"call {call_id} already has media here")
        if self._staging_space is not None:
            await self._staging_space.check()
        bridge = CallMediaBridge(
            call_id,
            on_leg_state=on_leg_state,
            on_notice=on_notice,
            # The bridge names the participant (in its log); the call ends for both.
            on_failure=lambda participant_id, detail: on_failure(detail),
            settings=self._bridge_settings,
        )
        media = LocalCallMedia(
            call_id,
            bridge,
            self._sink_factory(),
            lambda: self._forget(call_id),
            on_failure=on_failure,
        )
        self.calls[call_id] = media
        return media

    def _forget(self, call_id: str) -> None:
        self.calls.pop(call_id, None)

    def status(self) -> dict[str, object]:
        return {"mode": "in_process", "calls": len(self.calls)}

    @property
    def ready(self) -> bool:
        return not self._closing

    async def aclose(self) -> None:
        self._closing = True
        for media in list(self.calls.values()):
            await media.aclose()
        self.calls.clear()
