"""aiortc client peers that play a browser's part against the media bridge.

A ``MediaClient`` sends a pre-encoded clip (``tests.support.encoded_media``) and receives
through the same encoded-frame tap the bridge uses, so neither side encodes or decodes:
tests can compare bytes, and the bench's clients stay cheap.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from signaling import aiortc_patches
from signaling.media_codecs import OPUS_CLOCK_RATE, VIDEO_CLOCK_RATE, codec_preferences, is_keyframe
from tests.support.encoded_media import AdaptiveReplayTrack, EncodedClip, ReplayTrack

HOST_CANDIDATE = r"^a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 (\d+) typ host"


def server_media_port(answer_sdp: str) -> int:
    """The one loopback port a bridge's (bundled) answer offers."""
    ports = {int(m.group(1)) for m in re.finditer(HOST_CANDIDATE, answer_sdp, re.M)}
    if len(ports) != 1:
        raise AssertionError(f"expected one server media port in the answer, got {ports}")
    return ports.pop()


class Progress:
    """Something happened (a frame arrived, a state changed): wake whoever waits."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait_for(
        self, predicate: Callable[[], bool], what: str, timeout: float = 15.0
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._event.clear()
                    await self._event.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    timestamp: int
    data: bytes
    keyframe: bool


@dataclass
class ReceivedFrames:
    progress: Progress
    frames: list[ReceivedFrame] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    """``time.monotonic()`` (the loop's clock) when each frame was complete."""
    codecs: set[str] = field(default_factory=set)
    packet_gaps: int = 0
    """Lost packets the receiver gave up on (the frames after each wait for a keyframe)."""

    def packet_gap(self) -> None:
        self.packet_gaps += 1

    def add(self, codec: str, clock_rate: int, data: bytes, timestamp: int) -> None:
        self.codecs.add(codec)
        self.frames.append(ReceivedFrame(timestamp, data, is_keyframe(codec, data)))
        self.arrivals.append(time.monotonic())
        self.progress.notify()

    def __len__(self) -> int:
        return len(self.frames)


class MediaClient:
    """One browser-like peer: audio and video sendrecv, pre-encoded media out."""

    def __init__(
        self,
        clip: EncodedClip,
        progress: Progress,
        *,
        video_codec: str = "VP8",
        max_video_frames: int | None = None,
        max_audio_frames: int | None = None,
        video_ladder: tuple[EncodedClip, ...] | None = None,
    ) -> None:
        self.progress = progress
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.sources: dict[str, ReplayTrack] = {
            "audio": ReplayTrack("audio", clip, max_frames=max_audio_frames),
            "video": (
                AdaptiveReplayTrack(video_ladder)
                if video_ladder
                else ReplayTrack("video", clip, max_frames=max_video_frames)
            ),
        }
        self.estimates: list[tuple[float, int]] = []
        """``(loop time, bits per second)`` of every REMB the bridge sent about our video."""
        self.received = {"audio": ReceivedFrames(progress), "video": ReceivedFrames(progress)}
        self.states: list[str] = []
        self.transceivers = {}
        for kind, codec, clock_rate in (
            ("audio", "opus", OPUS_CLOCK_RATE),
            ("video", video_codec, VIDEO_CLOCK_RATE),
        ):
            source = self.sources[kind]
            transceiver = self.pc.addTransceiver(source, direction="sendrecv")
            transceiver.setCodecPreferences(codec_preferences(kind, codec))
            aiortc_patches.tap_receiver(transceiver.receiver, self.received[kind].add)
            if kind == "video":
                # A browser's jitter buffer gives up on a lost packet and asks for a
                # keyframe; aiortc's waits for 512 more packets.
                aiortc_patches.bound_video_wait(
                    transceiver.receiver, self.received[kind].packet_gap
                )
            aiortc_patches.make_sender_passthrough(
                transceiver.sender,
                codec=codec,
                clock_rate=clock_rate,
                on_keyframe_request=source.request_keyframe,
                on_receiver_estimate=self._on_estimate if kind == "video" else None,
            )
            self.transceivers[kind] = transceiver

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            self.states.append(self.pc.connectionState)
            progress.notify()

        self.answer_sdp: str | None = None

    def _on_estimate(self, bitrate: int) -> None:
        self.estimates.append((asyncio.get_running_loop().time(), bitrate))
        self.progress.notify()
        source = self.sources["video"]
        if isinstance(source, AdaptiveReplayTrack):
            source.set_target_bitrate(bitrate)

    async def create_offer(self, *, without_candidates: bool = False) -> str:
        """Our offer; ``without_candidates`` leaves out our addresses, so the server can
        reach us only where our checks come from (through a shaper, say)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = str(self.pc.localDescription.sdp)
        if without_candidates:
            sdp = "".join(
                line
                for line in sdp.splitlines(keepends=True)
                if not line.startswith(("a=candidate:", "a=end-of-candidates"))
            )
        return sdp

    async def accept_answer_through(self, answer_sdp: str, port: int) -> None:
        """Accept the bridge's answer, but reach its media port only through ``port``
        (a ``UdpShaperProcess`` relaying to it)."""
        server_port = server_media_port(answer_sdp)
        rewritten = re.sub(
            rf"^(a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 ){server_port}( typ host)",
            rf"\g<1>{port}\g<2>",
            answer_sdp,
            flags=re.M,
        )
        await self.accept_answer(rewritten)

    async def accept_answer(self, answer_sdp: str) -> None:
        self.answer_sdp = answer_sdp
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def wait_connected(self, timeout: float = 15.0) -> None:
        await self.progress.wait_for(
            lambda: self.pc.connectionState == "connected", "client connected", timeout
        )

    def server_candidate_ports(self) -> list[int]:
        assert self.answer_sdp is not None
        return sorted(
            {
                int(match.group(1))
                for match in re.finditer(
                    r"^a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 (\d+) typ host",
                    self.answer_sdp,
                    re.MULTILINE | re.IGNORECASE,
                )
            }
        )

    def remote_video_ssrc(self) -> int:
        """The SSRC the bridge sends our video with (from its answer)."""
        assert self.answer_sdp is not None
        video = self.answer_sdp[self.answer_sdp.index("m=video") :]
        return int(re.search(r"^a=ssrc:(\d+) ", video, re.MULTILINE).group(1))  # type: ignore[union-attr]

    async def send_picture_loss_indication(self) -> None:
        receiver = self.transceivers["video"].receiver
        await aiortc_patches.send_picture_loss_indication(receiver, self.remote_video_ssrc())

    async def close(self) -> None:
        await self.pc.close()
