"""Crash-safe live files of encoded packets (PyAV muxing, no codec ever opened for video).

A participant's recording is written as one or more *parts*: a new part starts only when
the set of streams changes (audio-only until the camera first sends a keyframe, then
video + audio), because a muxer cannot add a stream after its header. Finalising remuxes
the parts, by packet copy, into the one file a reviewer replays.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final, Literal

import av
import av.container
import av.stream

from recorder.bitstream import OPUS_SAMPLE_RATE
from recorder.frames import MediaKind

ContainerKind = Literal["webm", "mp4"]
VideoCodecName = Literal["VP8", "H264"]

# WebM survives kill -9 only in live mode (no size fields to patch at the end) with packets
# flushed as they are written. The muxer holds a cluster in memory until it closes, so the
# cluster length bounds what a crash loses; DESIGN.md section 5 measured 1000 ms clusters,
# but a kill just before a cluster closes then loses a little over 1 s. 500 ms still lost
# 1.1 s once in six fresh-clone suite runs on a loaded 2-core machine (the open cluster,
# the interleaver's 250 ms and the writer thread's backlog add up); 250 ms clusters bound
# the muxer's share to a quarter second, for a few more bytes of cluster headers a second.
LIVE_WEBM_OPTIONS: Final = {
    "live": "1",
    "cluster_time_limit": "250",
    "flush_packets": "1",
    # libavformat's interleaver holds packets until every stream has one queued (up to
    # 10 s by default); with the camera off only audio flows, so bound what it holds.
    "max_interleave_delta": "250000",
}
# Fragmented MP4: an empty moov, then self-contained fragments of about a second.
# delay_moov holds the moov back until the first fragment: written up front, it cannot
# carry the edit list for a nonzero first timestamp, and the muxer silently restarts every
# track at zero -- the file would lose its place on the call clock.
LIVE_MP4_OPTIONS: Final = {
    "movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
    "frag_duration": "1000000",
    "flush_packets": "1",
    "max_interleave_delta": "250000",
}

_FFMPEG_VIDEO_CODEC: Final[dict[VideoCodecName, str]] = {"VP8": "vp8", "H264": "h264"}


def container_for(video_codec: VideoCodecName | None) -> ContainerKind:
    return "mp4" if video_codec == "H264" else "webm"


@dataclass(frozen=True, slots=True)
class VideoTrack:
    codec: VideoCodecName
    width: int
    height: int


class LiveSegment:
    """One part file being written live. Not thread-safe: owned by the worker thread."""

    def __init__(
        self, path: Path, container: ContainerKind, video: VideoTrack | None, audio: bool
    ) -> None:
        if video is None and not audio:
            raise ValueError("a part needs at least one stream")
        if video is not None and container_for(video.codec) != container:
            raise ValueError(f"{video.codec} does not go into {container}")
        self.path = path
        self.container_kind: ContainerKind = container
        self.video_track = video
        options = LIVE_WEBM_OPTIONS if container == "webm" else LIVE_MP4_OPTIONS
        self._out: av.container.OutputContainer = av.open(
            str(path), "w", format=container, container_options=dict(options)
        )
        self._streams: dict[MediaKind, av.stream.Stream] = {}
        self._last_ticks: dict[MediaKind, int] = {}
        self.packets: dict[MediaKind, int] = {"audio": 0, "video": 0}
        # Media bytes handed to the muxer (the file is this plus a few % of container).
        self.bytes_written = 0
        try:
            if video is not None:
                # A mux-only stream: no encoder is opened; for H264 PyAV extracts the
                # avcC parameter sets from the first (key)frame before writing the header.
                stream = self._out.add_mux_stream(
                    _FFMPEG_VIDEO_CODEC[video.codec], width=video.width, height=video.height
                )
                stream.time_base = Fraction(1, 1000) if container == "webm" else Fraction(1, 90_000)
                self._streams["video"] = stream
            if audio:
                # PyAV cannot set channel layout or extradata on a mux-only stream, and
                # Matroska needs the OpusHead; opening (never using) a libopus encoder
                # provides both. It adds the standard 312-sample pre-skip to the header.
                audio_stream = self._out.add_stream("libopus", rate=OPUS_SAMPLE_RATE)
                audio_stream.time_base = (
                    Fraction(1, 1000) if container == "webm" else Fraction(1, OPUS_SAMPLE_RATE)
                )
                self._streams["audio"] = audio_stream
        except BaseException:
            self._out.close()
            raise

    @property
    def has_video(self) -> bool:
        return "video" in self._streams

    @property
    def has_audio(self) -> bool:
        return "audio" in self._streams

    def write(
        self, kind: MediaKind, data: bytes, pts: float, keyframe: bool, duration: float = 0.0
    ) -> float:
        """Mux one encoded frame at ``pts`` seconds; answers the pts actually written.

        Times are kept strictly increasing per stream in the stream's own ticks, so two
        frames that round to the same millisecond in WebM still get distinct timestamps.
        """
        stream = self._streams[kind]
        time_base = stream.time_base
        assert time_base is not None
        ticks = round(pts / time_base)
        last = self._last_ticks.get(kind)
        if last is not None and ticks <= last:
            ticks = last + 1
        packet = av.Packet(data)
        packet.stream = stream
        packet.time_base = time_base
        packet.pts = ticks
        packet.dts = ticks
        packet.is_keyframe = keyframe
        if duration > 0:
            packet.duration = max(1, round(duration / time_base))
        self._out.mux(packet)
        self._last_ticks[kind] = ticks
        self.packets[kind] += 1
        self.bytes_written += len(data)
        return float(ticks * time_base)

    def close(self) -> None:
        self._out.close()
