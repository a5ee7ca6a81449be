"""CPU cost of recording a call with CallRecorder (encoded packets, no re-encoding).

Feeds N seconds of pre-encoded 640x480 VP8 + Opus for two participants through one
CallRecorder and prints:
- the event-loop side cost of ``on_frame`` (what the media path pays per frame),
- CPU-seconds per call-second for live muxing (worker thread, file writes) and for
  finalising (remux with cues, SHA-256) -- ``time.process_time`` covers every thread,
- the bitrate written versus the media's own bitrate (equal but for container overhead:
  nothing is re-encoded).

Standalone: ``.venv/bin/python bench/bench_recorder.py [--seconds 60] [--paced]``.
``--paced`` feeds in real time on an asyncio loop and reports the loop's lag as well.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.video.frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recorder import CallRecorder

FPS = 30
WIDTH, HEIGHT = 640, 480
VIDEO_RATE = 90_000
AUDIO_RATE = 48_000


@dataclass(frozen=True, slots=True)
class Frame:
    participant_id: str
    kind: Literal["audio", "video"]
    codec: str
    data: bytes
    rtp_timestamp: int
    clock_rate: int
    keyframe: bool
    arrival: float


def _picture(index: int) -> av.VideoFrame:
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    rows = [bytes([(row + index * 3) % 200 + 40]) * WIDTH for row in range(HEIGHT)]
    top = (index * 7) % (HEIGHT - 96)
    left = (index * 11) % (WIDTH - 96)
    noise = bytes((i * 2654435761 + index * 97) % 251 for i in range(96))
    for row in range(top, top + 96):
        rows[row] = rows[row][:left] + noise + rows[row][left + 96 :]
    frame.planes[0].update(b"".join(rows))
    frame.planes[1].update(bytes([110]) * frame.planes[1].buffer_size)
    frame.planes[2].update(bytes([150]) * frame.planes[2].buffer_size)
    return frame


def encode_clip(seconds: int = 4) -> tuple[list[tuple[bytes, bool]], list[bytes]]:
    """VP8 at ~800 kbit/s with a keyframe every second, and 48 kbit/s Opus; loopable."""
    video = av.CodecContext.create("libvpx", "w")
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.time_base = Fraction(1, FPS)
    video.bit_rate = 800_000
    video.gop_size = 10 * FPS
    video.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    vp8: list[tuple[bytes, bool]] = []
    for index in range(seconds * FPS):
        picture = _picture(index)
        picture.pts = index
        if index % FPS == 0:
            picture.pict_type = av.video.frame.PictureType.I
        vp8 += [(bytes(p), p.is_keyframe) for p in video.encode(picture)]
    vp8 += [(bytes(p), p.is_keyframe) for p in video.encode(None)]

    audio = av.CodecContext.create("libopus", "w")
    audio.sample_rate, audio.layout, audio.format = AUDIO_RATE, "stereo", "s16"
    audio.time_base = Fraction(1, AUDIO_RATE)
    audio.bit_rate = 48_000
    opus: list[bytes] = []
    for index in range(seconds * 50):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(bytes((i * 37 + index) % 251 for i in range(960 * 4)))
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * 960
        opus += [bytes(p) for p in audio.encode(frame)]
    return vp8, opus


def script(seconds: int, t0: float) -> list[tuple[float, Frame]]:
    vp8, opus = encode_clip()
    events: list[tuple[float, Frame]] = []
    for participant, offset in (("alice", 0.0), ("bob", 0.25)):
        for n in range(seconds * FPS):
            t = offset + n / FPS
            data, key = vp8[n % len(vp8)]
            frame = Frame(
                participant, "video", "VP8", data, round(t * VIDEO_RATE), VIDEO_RATE, key, t0 + t
            )
            events.append((t, frame))
        for n in range(seconds * 50):
            t = offset + n * 0.02
            frame = Frame(
                participant,
                "audio",
                "opus",
                opus[n % len(opus)],
                round(t * AUDIO_RATE),
                AUDIO_RATE,
                True,
                t0 + t,
            )
            events.append((t, frame))
    events.sort(key=lambda e: e[0])
    return events


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def feed(
    events: list[tuple[float, Frame]], recorder: CallRecorder | None, paced: bool
) -> tuple[float, list[float], list[float]]:
    """Hand every frame to ``recorder`` (or to nobody: the pacing baseline).

    Answers process CPU seconds spent, per-call ``on_frame`` costs and loop lags.
    """
    costs: list[float] = []
    lags: list[float] = []
    loop = asyncio.get_running_loop()
    cpu0 = time.process_time()
    start = loop.time()
    for t, frame in events:
        if paced:
            due = start + 0.5 + t
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, loop.time() - due))
            frame = dataclasses.replace(frame, arrival=time.monotonic())  # noqa: PLW2901
        if recorder is not None:
            c0 = time.perf_counter()
            recorder.on_frame(frame)
            costs.append(time.perf_counter() - c0)
    if recorder is not None:
        while recorder.stats().queue_depth:  # bench only: wait for the worker to drain
            await asyncio.sleep(0.01)
    return time.process_time() - cpu0, costs, lags


async def run(seconds: int, paced: bool) -> None:
    events = script(seconds, 10_000.0)
    media_bytes = {
        p: sum(len(f.data) for _, f in events if f.participant_id == p) for p in ("alice", "bob")
    }
    baseline_cpu = (await feed(events, None, paced))[0] if paced else 0.0
    with tempfile.TemporaryDirectory(prefix="bench-recorder-") as tmp:
        directory = Path(tmp)
        recorder = CallRecorder(
            "bench-call",
            directory,
            max_pending_frames=len(events) + 1,
            clock=(time.monotonic if paced else (lambda: 10_000.0 + seconds + 0.25)),
        )
        wall0 = time.perf_counter()
        cpu_fed, costs, lags = await feed(events, recorder, paced)
        cpu_live = cpu_fed - baseline_cpu
        wall_live = time.perf_counter() - wall0
        live_bytes = sum(p.stat().st_size for p in directory.glob("*.part*"))
        cpu1 = time.process_time()
        recordings = await recorder.aclose()
        cpu_final = time.process_time() - cpu1
        final_bytes = sum(r.size for r in recordings)
        stats = recorder.stats()

    call_s = float(seconds)
    media_total = sum(media_bytes.values())
    media_kbps = media_total * 8 / call_s / 1000
    drops = sum(p.dropped_queue_full for p in stats.participants.values())
    mode = "paced, real time" if paced else "as fast as possible"
    us = [c * 1e6 for c in costs]
    print(
        f"recorder bench: 2 participants x {seconds} s of pre-encoded VP8 {WIDTH}x{HEIGHT}"
        f"@{FPS} + Opus 20 ms ({mode}); PyAV {av.__version__}"
    )
    print(f"media bitrate: {media_kbps:.0f} kbit/s per call ({media_kbps / 2:.0f} per participant)")
    print(
        f"on_frame on the loop: p50 {percentile(us, 0.5):.1f} us, p99 {percentile(us, 0.99):.1f}"
        f" us, max {max(us):.0f} us over {len(us)} frames; {drops} dropped"
    )
    if paced:
        print(
            f"pacing alone (no recorder): {baseline_cpu / seconds * 100:.2f} % of a core;"
            f" subtracted below"
        )
        ms = [lag * 1e3 for lag in lags]
        print(
            f"loop lag while feeding: p50 {percentile(ms, 0.5):.2f} ms,"
            f" p99 {percentile(ms, 0.99):.2f} ms, max {max(ms):.2f} ms"
        )
    print(
        f"live muxing: {cpu_live:.3f} CPU-s ({wall_live:.2f} s wall) ="
        f" {cpu_live / call_s:.4f} CPU-s per call-second"
        f" ({cpu_live / call_s * 100:.2f} % of a core)"
    )
    print(
        f"finalise (remux with cues + SHA-256): {cpu_final:.3f} CPU-s ="
        f" {cpu_final / call_s:.4f} CPU-s per call-second"
    )
    print(f"total: {(cpu_live + cpu_final) / call_s:.4f} CPU-s per call-second")
    print(
        f"written bitrate: live parts {live_bytes * 8 / call_s / 1000:.0f} kbit/s"
        f" (x{live_bytes / media_total:.3f} of the media), final files"
        f" {final_bytes * 8 / call_s / 1000:.0f} kbit/s (x{final_bytes / media_total:.3f})"
    )
    for rec in recordings:
        print(
            f"  {rec.participant_id}: {rec.container} {rec.video_codec}+{rec.audio_codec},"
            f" {rec.duration:.2f} s, {rec.video_frames} video + {rec.audio_frames} audio"
            f" packets, {rec.size} bytes"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="call length to record")
    parser.add_argument("--paced", action="store_true", help="feed in real time, measure loop lag")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.paced))


if __name__ == "__main__":
    main()
