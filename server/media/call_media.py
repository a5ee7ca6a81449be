"""The media side of one call, as the call service sees it, wherever the media runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from recorder import FinalisedRecording, RecorderStats
from signaling.call_state import FailureDetail
from signaling.media_bandwidth import Notice
from signaling.media_bridge import BridgeStats
from signaling.media_sink import MediaKind

LegStateListener = Callable[[str, str], None]
"""``on_leg_state(participant_id, state)``, on the serving loop; must not block."""

MediaFailureListener = Callable[[FailureDetail], None]
"""``on_failure(detail)``: the call's media failed for both people (its worker died, its
recording failed, a leg kept sending above the bitrate ceiling); the call must end. On
the serving loop; must not block."""

MediaNotice = Notice
MediaNoticeListener = Callable[[str, MediaNotice], None]
"""``on_notice(participant_id, notice)``: ``video_paused`` (the participant's connection
cannot carry the other's video, which is no longer forwarded to them; audio goes on) or
``video_resumed``. Both people should be told. On the serving loop; must not block."""


class MediaUnavailableError(Exception):
    """No media capacity for a new call (no live worker, the host is closing, no room to
    record it). ``words``, when given, tell the caller why in words meant for people."""

    def __init__(self, message: str, *, words: str | None = None) -> None:
        super().__init__(message)
        self.words = words


@dataclass(frozen=True, slots=True)
class CallMediaStats:
    bridge: BridgeStats
    recorder: RecorderStats | None


class CallMedia(Protocol):
    """One call's two media legs, their bridge and their recording."""

    @property
    def call_id(self) -> str: ...

    async def accept_offer(self, participant_id: str, offer_sdp: str) -> str:
        """The server's answer; raises ``MediaBridgeError`` subclasses when refused."""

    async def add_remote_candidate(
        self,
        participant_id: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None: ...

    async def set_media_enabled(self, participant_id: str, kind: MediaKind, enabled: bool) -> None:
        """The participant's camera or microphone switch."""

    def leg_state(self, participant_id: str) -> str | None:
        """The participant's current leg state as last reported, or None."""

    async def start_recording(self) -> None:
        """Record from now on (the call became active). Raises if recording cannot start."""

    async def stats(self) -> CallMediaStats: ...

    async def aclose(self) -> list[FinalisedRecording]:
        """Close both legs and finish the recording; answers what was recorded (recovered
        from disk, marked interrupted, when the media process died). Safe to call twice."""


class MediaHost(Protocol):
    async def open_call(
        self,
        call_id: str,
        *,
        on_leg_state: LegStateListener,
        on_failure: MediaFailureListener,
        on_notice: MediaNoticeListener | None = None,
    ) -> CallMedia:
        """Raises ``MediaUnavailableError`` when the call cannot be placed."""

    def status(self) -> dict[str, object]:
        """What ``/readyz`` shows about the media side."""

    @property
    def ready(self) -> bool:
        """Whether new calls can be placed."""

    async def aclose(self) -> None: ...
