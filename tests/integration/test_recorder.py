"""CallRecorder end to end: real encoded media in, real files out, reopened with PyAV.

The clips are encoded once per module with PyAV (VP8 640x480 and H264 constrained
baseline at 30 fps with a keyframe every second, Opus 48 kHz 20 ms); the frames fed to the
recorder are exactly what a browser would send, on a scripted clock with arrival jitter.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.video.frame
import pytest

from recorder import (
    CallRecorder,
    FinalisedRecording,
    find_unfinished_recordings,
    participant_stem,
    recover_recording,
)
from signaling.media_sink import EncodedFrame, EncodedFrameSink
from tests.support.tools import require_tool

FPS = 30
VIDEO_RATE = 90_000
AUDIO_RATE = 48_000
AUDIO_FRAME_S = 0.02
WIDTH, HEIGHT = 640, 480
T0 = 5_000.0  # the scripted monotonic clock's origin
# A script is fed in one go, much faster than real time: room for all of it.
ROOMY = 100_000

Codec = Literal["VP8", "H264"]


# -- media -----------------------------------------------------------------------------


def _picture(index: int) -> av.VideoFrame:
    """A scrolling ramp with a moving bright block: cheap to build, not trivially coded."""
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma = bytearray((row + index * 3) % 200 + 40 for row in range(HEIGHT))
    rows = [bytes([value]) * WIDTH for value in luma]
    block_row = (index * 7) % (HEIGHT - 64)
    for row in range(block_row, block_row + 64):
        start = (index * 11) % (WIDTH - 64)
        rows[row] = rows[row][:start] + b"\xeb" * 64 + rows[row][start + 64 :]
    frame.planes[0].update(b"".join(rows))
    frame.planes[1].update(bytes([110]) * frame.planes[1].buffer_size)
    frame.planes[2].update(bytes([150]) * frame.planes[2].buffer_size)
    return frame


def encode_video(codec: Codec, frames: int = 2 * FPS) -> list[tuple[bytes, bool]]:
    """``frames`` encoded frames with a keyframe exactly every second (loopable)."""
    if codec == "VP8":
        encoder = av.CodecContext.create("libvpx", "w")
        encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    else:
        encoder = av.CodecContext.create("libx264", "w")
        encoder.options = {"profile": "baseline", "preset": "ultrafast", "tune": "zerolatency"}
    encoder.width = WIDTH
    encoder.height = HEIGHT
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, FPS)
    encoder.bit_rate = 800_000
    encoder.gop_size = 10 * FPS
    out: list[tuple[bytes, bool]] = []
    for index in range(frames):
        picture = _picture(index)
        picture.pts = index
        if index % FPS == 0:
            picture.pict_type = av.video.frame.PictureType.I
        out += [(bytes(p), p.is_keyframe) for p in encoder.encode(picture)]
    out += [(bytes(p), p.is_keyframe) for p in encoder.encode(None)]
    assert len(out) == frames
    assert [i for i, (_, key) in enumerate(out) if key] == list(range(0, frames, FPS))
    return out


def encode_audio(frames: int = 50) -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = AUDIO_RATE
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.time_base = Fraction(1, AUDIO_RATE)
    encoder.bit_rate = 48_000
    out: list[bytes] = []
    tone = bytes((i * 37) % 251 for i in range(960 * 4))  # noisy but deterministic
    for index in range(frames):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(tone)
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * 960
        out += [bytes(p) for p in encoder.encode(frame)]
    out += [bytes(p) for p in encoder.encode(None)]
    return out[:frames]


@dataclass(frozen=True)
class Clips:
    vp8: list[tuple[bytes, bool]]
    h264: list[tuple[bytes, bool]]
    opus: list[bytes]


@pytest.fixture(scope="module")
def clips() -> Clips:
    return Clips(vp8=encode_video("VP8"), h264=encode_video("H264"), opus=encode_audio())


# -- a scripted call -------------------------------------------------------------------


@dataclass(frozen=True)
class MediaState:
    participant_id: str
    kind: Literal["audio", "video"]
    enabled: bool
    at: float


@dataclass
class CallScript:
    """Frames and on/off events of a call, fed to a sink in arrival order."""

    seed: int = 7
    events: list[EncodedFrame | MediaState] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._jitter = random.Random(self.seed)

    def video(
        self,
        participant: str,
        codec: Codec,
        clip: list[tuple[bytes, bool]],
        start: float,
        end: float,
        first_index: int = 0,
    ) -> list[EncodedFrame]:
        frames = []
        n = 0
        while (t := start + n / FPS) < end:
            data, key = clip[(first_index + n) % len(clip)]
            frames.append(
                EncodedFrame(
                    participant_id=participant,
                    kind="video",
                    codec=codec,
                    data=data,
                    # The sender's capture clock: it keeps running while the camera is off.
                    rtp_timestamp=10_000 + round(t * VIDEO_RATE),
                    clock_rate=VIDEO_RATE,
                    keyframe=key,
                    arrival=T0 + t + self._jitter.uniform(0, 0.012),
                )
            )
            n += 1
        self.events += frames
        return frames

    def audio(
        self, participant: str, clip: list[bytes], start: float, end: float
    ) -> list[EncodedFrame]:
        frames = []
        n = 0
        while (t := start + n * AUDIO_FRAME_S) < end:
            frames.append(
                EncodedFrame(
                    participant_id=participant,
                    kind="audio",
                    codec="opus",
                    data=clip[n % len(clip)],
                    rtp_timestamp=20_000 + round(t * AUDIO_RATE),
                    clock_rate=AUDIO_RATE,
                    keyframe=True,
                    arrival=T0 + t + self._jitter.uniform(0, 0.012),
                )
            )
            n += 1
        self.events += frames
        return frames

    def state(
        self, participant: str, kind: Literal["audio", "video"], enabled: bool, t: float
    ) -> MediaState:
        event = MediaState(participant, kind, enabled, T0 + t)
        self.events.append(event)
        return event

    def ordered(self) -> list[EncodedFrame | MediaState]:
        return sorted(self.events, key=lambda e: e.at if isinstance(e, MediaState) else e.arrival)

    def feed(self, sink: EncodedFrameSink) -> None:
        for event in self.ordered():
            if isinstance(event, MediaState):
                sink.on_media_state(event.participant_id, event.kind, event.enabled, event.at)
            else:
                sink.on_frame(event)


def call_start(script: CallScript) -> float:
    return min(e.arrival for e in script.events if isinstance(e, EncodedFrame))


# -- reading files back ----------------------------------------------------------------


@dataclass
class Probe:
    codecs: dict[str, str]
    packets: dict[str, int]
    decode_errors: int
    video_frames: list[tuple[float, float]]  # (time, mean luma)


def mean_luma(frame: av.VideoFrame) -> float:
    plane = frame.planes[0]
    data = bytes(plane)
    line = plane.line_size
    rows = [data[r * line : r * line + frame.width] for r in range(0, frame.height, 8)]
    return sum(sum(row) for row in rows) / (len(rows) * frame.width)


def probe(path: Path) -> Probe:
    """Demux and decode every packet of a finished file."""
    codecs: dict[str, str] = {}
    packets: dict[str, int] = {"audio": 0, "video": 0}
    errors = 0
    pictures: list[tuple[float, float]] = []
    with av.open(str(path)) as container:
        for stream in container.streams:
            codecs[stream.type] = stream.codec_context.name
        for packet in container.demux():
            if packet.dts is None:
                continue
            packets[packet.stream.type] += 1
            try:
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        assert frame.time is not None
                        pictures.append((frame.time, mean_luma(frame)))
            except av.error.FFmpegError:
                errors += 1
    return Probe(codecs, packets, errors, pictures)


def ffprobe(path: Path) -> dict[str, Any]:
    tool = require_tool("ffprobe")
    result = subprocess.run(
        [
            tool,
            "-v", "error",
            "-count_packets",
            "-show_format",
            "-show_streams",
            "-of", "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    return dict(json.loads(result.stdout))


def assert_seekable(path: Path, targets: list[float], max_gop: float) -> None:
    """Seeking lands on a keyframe at or before the target, no more than a GOP before."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if container.streams.video else container.streams[0]
        assert stream.time_base is not None
        for target in targets:
            container.seek(round(target / stream.time_base), stream=stream, backward=True)
            frames = (f for f in container.decode(stream) if isinstance(f, av.VideoFrame))
            first = next(frames)
            assert first.time is not None
            assert target - max_gop <= first.time <= target + 0.05, (target, first.time)
            last = first.time
            while last < target - 0.05:
                nxt = next(frames)
                assert nxt.time is not None
                last = nxt.time


def by_participant(recordings: list[FinalisedRecording]) -> dict[str, FinalisedRecording]:
    return {r.participant_id: r for r in recordings}


def recorder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("recorder-")]


@pytest.fixture(autouse=True)
def _no_thread_left_behind() -> Iterator[None]:
    yield
    assert recorder_threads() == []


# -- tests -----------------------------------------------------------------------------


async def test_two_participants_webm_with_camera_and_microphone_off(
    tmp_path: Path, clips: Clips
) -> None:
    script = CallScript()
    # Alice: the bridge's first video frames are mid-GOP (3 deltas before the keyframe).
    alice_audio = script.audio("alice", clips.opus, 0.0, 8.0)
    alice_video_1 = script.video("alice", "VP8", clips.vp8, 0.05, 3.07, first_index=FPS - 3)
    off = script.state("alice", "video", False, 3.0)
    on = script.state("alice", "video", True, 5.0)
    # Back on: two deltas from the old GOP, then the keyframe the bridge asked for.
    alice_video_2 = script.video("alice", "VP8", clips.vp8, 5.02, 8.0, first_index=FPS - 2)
    # Bob joins half a second later and mutes his microphone from 2 s to 4 s.
    bob_audio = script.audio("bob", clips.opus, 0.5, 2.0) + script.audio(
        "bob", clips.opus, 4.0, 8.3
    )
    script.state("bob", "audio", False, 2.0)
    script.state("bob", "audio", True, 4.0)
    bob_video = script.video("bob", "VP8", clips.vp8, 0.6, 8.3)

    recorder = CallRecorder("call-webm", tmp_path, max_pending_frames=ROOMY, clock=lambda: T0 + 8.4)
    sink: EncodedFrameSink = recorder  # the bridge's protocol, satisfied structurally
    script.feed(sink)
    recordings = by_participant(await recorder.aclose())
    stats = recorder.stats().participants

    in_flight = sum(1 for f in alice_video_1 if f.arrival > off.at)
    assert in_flight >= 1
    # What was deliberately not recorded: deltas before the first keyframe, frames that
    # arrived after camera-off, deltas after camera-on until the keyframe; plus one black.
    expected_alice_video = len(alice_video_1) + len(alice_video_2) - 3 - in_flight - 2 + 1
    assert stats["alice"].video_dropped_awaiting_keyframe == 5
    assert stats["alice"].video_dropped_camera_off == in_flight
    assert stats["alice"].black_frames_inserted == 1
    assert stats["bob"].silence_frames_inserted == 100  # 2 s of 20 ms frames
    assert stats["alice"].dropped_queue_full == stats["bob"].dropped_queue_full == 0

    alice, bob = recordings["alice"], recordings["bob"]
    start = call_start(script)
    for rec in (alice, bob):
        assert rec.call_id == "call-webm"
        assert rec.container == "webm"
        assert rec.mime_type == "video/webm"
        assert (rec.video_codec, rec.audio_codec) == ("vp8", "opus")
        assert rec.path.suffix == ".webm"
        assert rec.path.exists()
        assert rec.interrupted is False
    assert alice.video_frames == expected_alice_video
    assert alice.audio_frames == len(alice_audio)
    assert bob.video_frames == len(bob_video)
    assert bob.audio_frames == len(bob_audio) + 100

    # One clock: Bob's file starts where he joined, on the call's clock.
    assert alice.start_offset == pytest.approx(0.0, abs=0.001)
    assert bob.start_offset == pytest.approx(0.5 - (start - T0), abs=0.015)
    assert alice.duration == pytest.approx(8.0, abs=0.5)
    assert bob.duration == pytest.approx(7.8, abs=0.5)

    # Reopened: codecs, packet counts and a clean decode.
    for rec, expected in ((alice, alice), (bob, bob)):
        probed = probe(rec.path)
        assert probed.codecs == {"video": "vp8", "audio": "opus"}
        assert probed.packets == {"video": expected.video_frames, "audio": expected.audio_frames}
        assert probed.decode_errors == 0

    # Camera-off shows black from the mute instant until the camera's next keyframe.
    pictures = probe(alice.path).video_frames
    black_at = off.at - start
    black = [p for p in pictures if p[1] < 20]
    assert len(black) == 1
    assert black[0][0] == pytest.approx(black_at, abs=0.002)
    after = [p for p in pictures if p[0] > black[0][0]]
    before = [p for p in pictures if p[0] < black[0][0]]
    assert before[-1][1] > 60  # the live picture, not black
    assert after[0][0] >= on.at - start  # nothing between mute and return

    # Seekable: cues written, seeks land on a keyframe at or before the target.
    data = alice.path.read_bytes()
    assert b"\x1c\x53\xbb\x6b" in data  # Matroska Cues element
    assert_seekable(alice.path, [1.5, 4.0, 6.5, 7.9], max_gop=2.1)
    assert_seekable(bob.path, [2.5, 7.0], max_gop=1.1)

    for rec in (alice, bob):
        info = ffprobe(rec.path)
        counted = {s["codec_type"]: int(s["nb_read_packets"]) for s in info["streams"]}
        assert counted == {"video": rec.video_frames, "audio": rec.audio_frames}
        assert info["format"]["format_name"] == "matroska,webm"

    # Size and hash describe the file on disk; nothing is left to recover.
    for rec in (alice, bob):
        assert rec.size == rec.path.stat().st_size
        assert rec.sha256 == hashlib.sha256(rec.path.read_bytes()).hexdigest()
    assert find_unfinished_recordings(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alice.recording.json",
        "alice.webm",
        "bob.recording.json",
        "bob.webm",
    ]
    # Recovery of a finished recording answers it as it is.
    assert recover_recording(tmp_path / "alice.recording.json") == alice


async def test_h264_goes_to_mp4_with_black_frame_and_index_up_front(
    tmp_path: Path, clips: Clips
) -> None:
    script = CallScript(seed=11)
    audio = script.audio("seller-1", clips.opus, 0.0, 4.0)
    video_1 = script.video("seller-1", "H264", clips.h264, 0.03, 1.5)
    off = script.state("seller-1", "video", False, 1.52)
    script.state("seller-1", "video", True, 2.5)
    video_2 = script.video("seller-1", "H264", clips.h264, 2.51, 4.0, first_index=0)
    # The buyer joins 0.7 s in: the MP4 keeps its place on the call clock too.
    buyer_audio = script.audio("buyer-1", clips.opus, 0.7, 4.0)
    buyer_video = script.video("buyer-1", "H264", clips.h264, 0.7, 4.0)

    recorder = CallRecorder("call-mp4", tmp_path, max_pending_frames=ROOMY, clock=lambda: T0 + 4.0)
    script.feed(recorder)
    recordings = by_participant(await recorder.aclose())
    rec, buyer = recordings["seller-1"], recordings["buyer-1"]
    start = call_start(script)
    assert buyer.container == "mp4"
    assert (buyer.video_frames, buyer.audio_frames) == (len(buyer_video), len(buyer_audio))
    assert buyer.start_offset == pytest.approx(0.7 - (start - T0), abs=0.015)
    buyer_probe = probe(buyer.path)
    assert buyer_probe.video_frames[0][0] == pytest.approx(0.7 - (start - T0), abs=0.015)
    assert buyer_probe.decode_errors == 0
    ffprobe(buyer.path)

    assert rec.container == "mp4"
    assert rec.mime_type == "video/mp4"
    assert rec.path.name == "seller-1.mp4"
    assert (rec.video_codec, rec.audio_codec) == ("h264", "opus")
    assert rec.video_frames == len(video_1) + len(video_2) + 1
    assert rec.audio_frames == len(audio)
    assert rec.duration == pytest.approx(4.0, abs=0.5)

    probed = probe(rec.path)
    assert probed.codecs == {"video": "h264", "audio": "opus"}
    assert probed.packets == {"video": rec.video_frames, "audio": rec.audio_frames}
    assert probed.decode_errors == 0
    black = [p for p in probed.video_frames if p[1] < 20]
    assert len(black) == 1
    assert black[0][0] == pytest.approx(off.at - call_start(script), abs=0.002)

    data = rec.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: playable while loading
    assert_seekable(rec.path, [0.9, 2.0, 3.5], max_gop=1.1)
    info = ffprobe(rec.path)
    counted = {s["codec_type"]: int(s["nb_read_packets"]) for s in info["streams"]}
    assert counted == {"video": rec.video_frames, "audio": rec.audio_frames}


async def test_voice_only_call_is_an_audio_only_webm(tmp_path: Path, clips: Clips) -> None:
    script = CallScript(seed=3)
    # A host id that is no file name: the files get a hashed stem inside the directory.
    audio = script.audio("../buyer 9/", clips.opus, 0.0, 3.0)
    recorder = CallRecorder(
        "call-voice",
        tmp_path,
        max_pending_frames=ROOMY,
    )
    script.feed(recorder)
    (rec,) = await recorder.aclose()
    assert (rec.container, rec.video_codec, rec.audio_codec) == ("webm", None, "opus")
    assert rec.participant_id == "../buyer 9/"
    assert rec.path.parent == tmp_path
    assert rec.path.name == f"{participant_stem('../buyer 9/')}.webm"
    assert rec.path.name.startswith("p-")
    assert rec.audio_frames == len(audio)
    assert rec.video_frames == 0
    probed = probe(rec.path)
    assert probed.codecs == {"audio": "opus"}
    assert probed.packets["audio"] == len(audio)
    assert probed.decode_errors == 0
    info = ffprobe(rec.path)
    assert [s["codec_type"] for s in info["streams"]] == ["audio"]
    assert float(info["format"]["duration"]) == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_camera_turned_on_late_joins_both_parts_into_one_file(
    tmp_path: Path, clips: Clips, codec: Codec
) -> None:
    script = CallScript(seed=5)
    audio = script.audio("alice", clips.opus, 0.0, 6.0)
    clip = clips.vp8 if codec == "VP8" else clips.h264
    video = script.video("alice", codec, clip, 3.5, 6.0)  # after the audio grace
    recorder = CallRecorder(
        "call-late",
        tmp_path,
        max_pending_frames=ROOMY,
    )
    script.feed(recorder)
    (rec,) = await recorder.aclose()
    assert recorder.stats().participants["alice"].parts == 2
    # The voice-only start was a WebM part; an H264 call still ends as one MP4.
    assert rec.container == ("webm" if codec == "VP8" else "mp4")
    assert (rec.video_codec, rec.audio_codec) == (codec.lower(), "opus")
    assert (rec.video_frames, rec.audio_frames) == (len(video), len(audio))
    probed = probe(rec.path)
    assert probed.packets == {"video": len(video), "audio": len(audio)}
    assert probed.decode_errors == 0
    assert probed.video_frames[0][0] == pytest.approx(3.5 - (call_start(script) - T0), abs=0.02)
    assert not list(tmp_path.glob("*.part*"))
    ffprobe(rec.path)


async def test_microphone_off_until_hang_up_keeps_the_timeline(
    tmp_path: Path, clips: Clips
) -> None:
    script = CallScript(seed=9)
    audio = script.audio("bob", clips.opus, 0.0, 2.0)
    video = script.video("bob", "VP8", clips.vp8, 0.0, 5.0)
    script.state("bob", "audio", False, 2.0)
    recorder = CallRecorder("call-mute", tmp_path, max_pending_frames=ROOMY, clock=lambda: T0 + 5.0)
    script.feed(recorder)
    (rec,) = await recorder.aclose()
    silence = recorder.stats().participants["bob"].silence_frames_inserted
    assert silence == pytest.approx(150, abs=1)  # 2.0 s .. 5.0 s (less the start jitter)
    assert (rec.video_frames, rec.audio_frames) == (len(video), len(audio) + silence)
    assert rec.duration == pytest.approx(5.0, abs=0.05)


async def test_full_queue_drops_and_counts_instead_of_blocking(
    tmp_path: Path, clips: Clips
) -> None:
    script = CallScript(seed=1)
    frames = script.audio("alice", clips.opus, 0.0, 10.0) + script.video(
        "alice", "VP8", clips.vp8, 0.0, 10.0
    )
    requested: list[str] = []
    recorder = CallRecorder(
        "call-full", tmp_path, max_pending_frames=4, request_keyframe=requested.append
    )
    script.feed(recorder)  # 800 frames in one go, faster than any disk
    (rec,) = await recorder.aclose()
    stats = recorder.stats()
    alice = stats.participants["alice"]
    assert alice.dropped_queue_full > 0
    assert stats.queue_high_water <= 4
    received = alice.video_frames_received + alice.audio_frames_received
    assert received + alice.dropped_queue_full == len(frames)
    assert rec.video_frames == alice.video_frames_written
    assert rec.audio_frames == alice.audio_frames_written + alice.silence_frames_inserted
    if alice.video_frames_received < sum(1 for f in frames if f.kind == "video"):
        assert requested and set(requested) == {"alice"}
    assert probe(rec.path).decode_errors == 0


async def test_aclose_is_idempotent_and_later_frames_are_counted(
    tmp_path: Path, clips: Clips
) -> None:
    script = CallScript(seed=2)
    script.audio("alice", clips.opus, 0.0, 1.0)
    recorder = CallRecorder(
        "call-twice",
        tmp_path,
        max_pending_frames=ROOMY,
    )
    script.feed(recorder)
    first = await recorder.aclose()
    assert await recorder.aclose() == first
    recorder.on_frame(script.events[0])  # type: ignore[arg-type]
    recorder.on_media_state("alice", "audio", False, T0 + 2)
    assert recorder.stats().participants["alice"].dropped_after_close == 1
    assert len(first) == 1 and first[0].audio_frames == 50


async def test_no_frames_no_files(tmp_path: Path) -> None:
    recorder = CallRecorder("call-empty", tmp_path / "never")
    assert await recorder.aclose() == []
    assert not (tmp_path / "never").exists()
