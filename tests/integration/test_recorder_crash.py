"""kill -9 mid-call: what the recorder left on disk is recovered, playable, and recent.

A child process records two participants from live-paced frames and reports how far it
has fed; the test SIGKILLs it mid-stream, then recovers the files as the service does at
start-up.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recorder import CallRecorder, find_unfinished_recordings, recover_recording
from tests.integration.test_recorder import (
    AUDIO_FRAME_S,
    AUDIO_RATE,
    FPS,
    ROOMY,
    VIDEO_RATE,
    CallScript,
    Clips,
    Codec,
    encode_audio,
    encode_video,
    ffprobe,
    probe,
)

REPO = Path(__file__).resolve().parents[2]
FEED_SECONDS = 6.0
KILL_AFTER_FED = 5.0
MAX_LOSS_S = 1.0

CHILD = r"""
import asyncio, pickle, sys, time
from dataclasses import dataclass

from recorder import CallRecorder


@dataclass(frozen=True, slots=True)
class Frame:
    participant_id: str
    kind: str
    codec: str
    data: bytes
    rtp_timestamp: int
    clock_rate: int
    keyframe: bool
    arrival: float


async def main(directory: str, script: str) -> None:
    with open(script, "rb") as fh:
        events = pickle.load(fh)
    recorder = CallRecorder("call-crash", directory)
    start = time.monotonic()
    next_report = 0.0
    for t, pid, kind, codec, data, rtp, rate, key in events:
        delay = start + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        recorder.on_frame(Frame(pid, kind, codec, data, rtp, rate, key, time.monotonic()))
        if t >= next_report:
            print(f"fed {t:.3f}", flush=True)
            next_report += 0.1
    print("done", flush=True)
    await asyncio.sleep(30)  # the parent kills us long before; never finalise


asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def live_script() -> list[tuple[float, str, str, str, bytes, int, int, bool]]:
    vp8 = encode_video("VP8")
    opus = encode_audio()
    events = []
    for participant, offset in (("alice", 0.0), ("bob", 0.3)):
        n = 0
        while (t := offset + n / FPS) < FEED_SECONDS:
            data, key = vp8[n % len(vp8)]
            events.append(
                (t, participant, "video", "VP8", data, round(t * VIDEO_RATE), VIDEO_RATE, key)
            )
            n += 1
        n = 0
        while (t := offset + n * AUDIO_FRAME_S) < FEED_SECONDS:
            data = opus[n % len(opus)]
            events.append(
                (t, participant, "audio", "opus", data, round(t * AUDIO_RATE), AUDIO_RATE, True)
            )
            n += 1
    events.sort(key=lambda e: e[0])
    return events


@pytest.mark.slow
def test_sigkill_mid_call_leaves_recoverable_recent_files(tmp_path: Path) -> None:
    script_path = tmp_path / "script.pkl"
    script_path.write_bytes(pickle.dumps(live_script()))
    child_path = tmp_path / "child.py"
    child_path.write_text(CHILD, encoding="utf-8")
    recordings = tmp_path / "recordings"

    proc = subprocess.Popen(
        [sys.executable, str(child_path), str(recordings), str(script_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    fed = 0.0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("fed "):
                fed = float(line.split()[1])
            if fed >= KILL_AFTER_FED or line.startswith("done"):
                break
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert fed >= KILL_AFTER_FED

    unfinished = find_unfinished_recordings(recordings)
    assert [p.name for p in unfinished] == ["alice.recording.json", "bob.recording.json"]
    for manifest in unfinished:
        rec = recover_recording(manifest)
        assert rec.interrupted is True
        assert rec.call_id == "call-crash"
        assert rec.participant_id == manifest.name.split(".")[0]
        assert (rec.video_codec, rec.audio_codec) == ("vp8", "opus")
        end = rec.start_offset + rec.duration
        assert end >= fed - MAX_LOSS_S, (rec.participant_id, fed, end)
        assert end <= fed + 0.5
        probed = probe(rec.path)
        assert probed.decode_errors == 0
        assert probed.packets == {"video": rec.video_frames, "audio": rec.audio_frames}
        assert rec.video_frames >= (fed - MAX_LOSS_S - rec.start_offset) * FPS - 2
        ffprobe(rec.path)
        assert not list(recordings.glob(f"{rec.participant_id}.part*"))
        # Recovering twice answers the same recording.
        assert recover_recording(manifest) == rec
    assert find_unfinished_recordings(recordings) == []


@pytest.fixture(scope="module")
def clips() -> Clips:
    return Clips(vp8=encode_video("VP8"), h264=encode_video("H264"), opus=encode_audio())


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_recovery_drops_a_torn_tail(tmp_path: Path, clips: Clips, codec: Codec) -> None:
    """A copy of the live files taken mid-call, torn mid-write, as a crash leaves them."""
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    script = CallScript(seed=4)
    script.audio("alice", clips.opus, 0.0, 4.0)
    script.video("alice", codec, clips.vp8 if codec == "VP8" else clips.h264, 0.0, 4.0)
    recorder = CallRecorder("call-torn", live, max_pending_frames=ROOMY)
    try:
        script.feed(recorder)
        await recorder.wait_written()
        crashed.mkdir()
        for path in live.iterdir():
            shutil.copyfile(path, crashed / path.name)
    finally:
        await recorder.aclose()
    (part,) = crashed.glob("alice.part*")
    with part.open("r+b") as fh:
        fh.truncate(part.stat().st_size - 37)  # a write torn mid-block

    rec = recover_recording(crashed / "alice.recording.json")
    assert rec.interrupted is True
    assert rec.container == ("webm" if codec == "VP8" else "mp4")
    probed = probe(rec.path)
    assert probed.decode_errors == 0
    assert probed.packets == {"video": rec.video_frames, "audio": rec.audio_frames}
    end = rec.start_offset + rec.duration
    # WebM keeps all but the open cluster (250 ms) and the torn block; fragmented MP4
    # loses the fragment in memory (~1 s) and the torn one.
    assert end >= 4.0 - (1.0 if codec == "VP8" else 2.2), end
    ffprobe(rec.path)
