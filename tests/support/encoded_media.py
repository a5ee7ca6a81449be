"""Pre-encoded synthetic media for tests and benches: encode once, replay forever.

``encoded_clip()`` encodes a short synthetic 640x480 VP8 clip (keyframe every second) and
an Opus tone once per process with PyAV; ``ReplayTrack`` replays its packets as
``av.Packet``s with advancing timestamps at the real frame rate, so a load generator
never encodes. A replay track jumps to the next keyframe when its sender receives a
keyframe request (PLI/FIR), as a real encoder would, and records what it sent and the
requests it got, for assertions. ``AdaptiveReplayTrack`` also follows the REMB its sender
receives, as a browser's encoder does, by switching between clips encoded at several
bitrates on a keyframe.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK_RATE = 90000
AUDIO_CLOCK_RATE = 48000
AUDIO_SAMPLES_PER_FRAME = 960  # 20 ms, what browsers send


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    data: bytes
    keyframe: bool


@dataclass(frozen=True, slots=True)
class EncodedClip:
    video: tuple[EncodedPacket, ...]
    audio: tuple[EncodedPacket, ...]
    fps: int
    width: int
    height: int


def _video_frame(width: int, height: int, index: int, noise: random.Random) -> av.VideoFrame:
    """A moving ramp with moving bands of noise: about a webcam's bitrate in VP8."""
    frame = av.VideoFrame(width, height, "yuv420p")
    ramp = bytes(range(256)) * ((width + height) // 256 + 4)
    patch = width // 8
    for plane_index, plane in enumerate(frame.planes):
        line = plane.line_size
        shift = index * (4 if plane_index == 0 else 2)
        rows = []
        for row in range(plane.height):
            start = (row + shift) % 256
            data = ramp[start : start + line]
            if plane_index == 0 and (row // 8 + index) % 6 == 0:
                offset = (index * 8) % (line - patch)
                data = data[:offset] + noise.randbytes(patch) + data[offset + patch :]
            rows.append(data)
        plane.update(b"".join(rows))
    return frame


def _encode_video(
    width: int, height: int, fps: int, seconds: float, bitrate: int = 900_000
) -> list[EncodedPacket]:
    codec = av.CodecContext.create("libvpx", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.bit_rate = bitrate
    codec.gop_size = fps
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets: list[EncodedPacket] = []
    count = round(fps * seconds)
    noise = random.Random(20240601)
    for index in range(count):
        frame = _video_frame(width, height, index, noise)
        frame.pts = index
        # Force the keyframe cadence: libvpx may otherwise pick its own.
        frame.pict_type = av.video.frame.PictureType.I if index % fps == 0 else 0
        packets += [EncodedPacket(bytes(p), p.is_keyframe) for p in codec.encode(frame)]
    packets += [EncodedPacket(bytes(p), p.is_keyframe) for p in codec.encode(None)]
    assert len(packets) == count, (len(packets), count)
    assert packets[0].keyframe
    return packets


def _encode_audio(seconds: float) -> list[EncodedPacket]:
    codec = av.CodecContext.create("libopus", "w")
    assert isinstance(codec, av.AudioCodecContext)
    codec.sample_rate = AUDIO_CLOCK_RATE
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 48_000
    codec.time_base = Fraction(1, AUDIO_CLOCK_RATE)
    packets: list[EncodedPacket] = []
    count = round(seconds * AUDIO_CLOCK_RATE / AUDIO_SAMPLES_PER_FRAME)
    for index in range(count):
        base = index * AUDIO_SAMPLES_PER_FRAME
        samples = []
        for n in range(AUDIO_SAMPLES_PER_FRAME):
            value = int(8000 * math.sin(2 * math.pi * 440 * (base + n) / AUDIO_CLOCK_RATE))
            samples += (value, value)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=AUDIO_SAMPLES_PER_FRAME)
        frame.planes[0].update(struct.pack(f"<{len(samples)}h", *samples))
        frame.sample_rate = AUDIO_CLOCK_RATE
        frame.pts = base
        frame.time_base = Fraction(1, AUDIO_CLOCK_RATE)
        packets += [EncodedPacket(bytes(p), True) for p in codec.encode(frame)]
    packets += [EncodedPacket(bytes(p), True) for p in codec.encode(None)]
    return packets


@functools.cache
def encoded_clip(
    width: int = 640,
    height: int = 480,
    fps: int = 30,
    seconds: float = 3.0,
    bitrate: int = 900_000,
) -> EncodedClip:
    """The clip for this process (encoded on first use, about a second of CPU)."""
    return EncodedClip(
        video=tuple(_encode_video(width, height, fps, seconds, bitrate)),
        audio=tuple(_encode_audio(seconds)),
        fps=fps,
        width=width,
        height=height,
    )


class ReplayTrack(MediaStreamTrack):
    """Replays a clip's packets for one kind at the real frame rate, looping.

    ``max_frames`` stops after that many frames (the track then idles until stopped).
    ``sent`` lists ``(pts, data)`` of every packet handed to the sender.
    """

    def __init__(self, kind: str, clip: EncodedClip, *, max_frames: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        if kind == "video":
            self._packets = clip.video
            self._step = VIDEO_CLOCK_RATE // clip.fps
            self._time_base = Fraction(1, VIDEO_CLOCK_RATE)
            self._period = 1 / clip.fps
        else:
            self._packets = clip.audio
            self._step = AUDIO_SAMPLES_PER_FRAME
            self._time_base = Fraction(1, AUDIO_CLOCK_RATE)
            self._period = AUDIO_SAMPLES_PER_FRAME / AUDIO_CLOCK_RATE
        self._keyframe_indexes = [i for i, p in enumerate(self._packets) if p.keyframe]
        self._max_frames = max_frames
        self._index = 0
        self._count = 0
        self._start: float | None = None
        self._stopped = asyncio.Event()
        self._paused = False
        self._resumed = asyncio.Event()
        self.sent: list[tuple[int, bytes]] = []
        self.keyframe_requests = 0
        self.keyframe_requested = asyncio.Event()

    @property
    def started_at(self) -> float | None:
        """Loop time of the first frame: frame ``n`` left at this + ``n`` periods."""
        return self._start

    def request_keyframe(self) -> None:
        """What a sender does on PLI/FIR: the next frame is the next keyframe."""
        self.keyframe_requests += 1
        self.keyframe_requested.set()
        following = [i for i in self._keyframe_indexes if i >= self._index]
        self._index = following[0] if following else self._keyframe_indexes[0]

    def pause(self) -> None:
        """Stop sending (like a browser whose camera was turned off) until ``resume``."""
        self._paused = True
        self._resumed.clear()

    def resume(self) -> None:
        self._paused = False
        self._resumed.set()

    async def recv(self) -> av.Packet[Any]:
        while self._paused or (self._max_frames is not None and self._count >= self._max_frames):
            if self.readyState != "live":
                raise MediaStreamError
            waiters = [asyncio.ensure_future(self._stopped.wait())]
            if self._paused:
                waiters.append(asyncio.ensure_future(self._resumed.wait()))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if self._stopped.is_set():
                raise MediaStreamError
            if self._start is not None:
                # Time went on while paused: skip the frames a camera would not have sent.
                elapsed = asyncio.get_running_loop().time() - self._start
                self._count = max(self._count, int(elapsed / self._period))
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        # The media clock: frame n is due at start + n * period.
        delay = self._start + self._count * self._period - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._before_frame()
        encoded = self._packets[self._index]
        self._index = (self._index + 1) % len(self._packets)
        packet = av.Packet(encoded.data)
        packet.pts = self._count * self._step
        packet.time_base = self._time_base
        self._count += 1
        self.sent.append((packet.pts, encoded.data))
        return packet

    def _before_frame(self) -> None:
        """Subclasses may switch clips here (``self._index`` is the next frame)."""

    def stop(self) -> None:
        super().stop()
        self._stopped.set()


def clip_bitrate(clip: EncodedClip) -> int:
    """The clip's average video bitrate (bits per second)."""
    return round(sum(len(p.data) for p in clip.video) * 8 * clip.fps / len(clip.video))


class AdaptiveReplayTrack(ReplayTrack):
    """Video that follows its sender's REMB, as a browser's encoder follows its estimate.

    ``ladder`` holds clips of one length and frame rate (so their keyframes line up) at
    several bitrates; the track sends the best one whose bitrate fits the last target
    (the lowest when none fits), switching on the next keyframe. ``targets`` lists
    ``(loop time, bitrate)`` of every REMB heard; ``switches`` ``(loop time, bitrate)``.
    """

    def __init__(self, ladder: Sequence[EncodedClip]) -> None:
        rungs = sorted(ladder, key=clip_bitrate, reverse=True)
        if len({(len(c.video), c.fps) for c in rungs}) != 1:
            raise ValueError("the ladder's clips must have the same length and frame rate")
        super().__init__("video", rungs[0])
        self._rungs = [(clip_bitrate(c), c) for c in rungs]
        self._current = 0
        self._wanted = 0
        self.targets: list[tuple[float, int]] = []
        self.switches: list[tuple[float, int]] = []

    @property
    def bitrate(self) -> int:
        return self._rungs[self._current][0]

    def set_target_bitrate(self, bitrate: int) -> None:
        self.targets.append((asyncio.get_running_loop().time(), bitrate))
        fitting = [i for i, (rate, _) in enumerate(self._rungs) if rate <= bitrate]
        self._wanted = fitting[0] if fitting else len(self._rungs) - 1

    def _before_frame(self) -> None:
        if self._wanted != self._current and self._index in self._keyframe_indexes:
            self._current = self._wanted
            self._packets = self._rungs[self._current][1].video
            self.switches.append((asyncio.get_running_loop().time(), self.bitrate))
