"""The recorder when it cannot record: a full disk (a real, size-limited tmpfs), a call over
its staging budget, and the leftovers a full disk or a crash leaves for recovery.

Every call is recorded: a recorder that stops mid-call says so, once, so that its owner
ends the call (tests/integration/test_call_recording_failures.py follows that through the
service). Files are reopened with PyAV.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from recorder import (
    CallRecorder,
    find_unfinished_recordings,
    recover_recording,
    recoverable_manifests,
)
from tests.integration.test_recorder import (
    FPS,
    ROOMY,
    CallScript,
    Clips,
    encode_audio,
    encode_video,
    probe,
)
from tests.support.tools import fill_file_system, small_tmpfs

pytestmark = pytest.mark.integration

TMPFS_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def clips() -> Clips:
    return Clips(vp8=encode_video("VP8"), h264=[], opus=encode_audio())


def two_people(clips: Clips, start: float, end: float) -> CallScript:
    script = CallScript()
    for person in ("alice", "bob"):
        script.audio(person, clips.opus, start, end)
        script.video(person, "VP8", clips.vp8, start, end)
    return script


class FailureListener:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.told = asyncio.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.told.set()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


async def test_a_disk_that_fills_mid_call_stops_the_recording_and_says_so_once(
    tmp_path: Path, clips: Clips
) -> None:
    with small_tmpfs(tmp_path / "staging", TMPFS_BYTES) as staging:
        failed = FailureListener()
        recorder = CallRecorder(
            "call-full", staging / "call-full", max_pending_frames=ROOMY, on_failure=failed
        )
        two_people(clips, 0.0, 2.0).feed(recorder)
        await recorder.wait_written()
        assert recorder.failure is None and not failed.reasons

        filler = fill_file_system(staging)
        # Nothing the recorder writes fits any more: 2 s more of both people, on the same clock.
        two_people(clips, 2.0, 4.0).feed(recorder)
        await recorder.wait_written()
        await asyncio.wait_for(failed.told.wait(), 10)
        assert len(failed.reasons) == 1
        assert "errno 28" in failed.reasons[0]  # ENOSPC, named without paths
        assert recorder.failure == failed.reasons[0]
        stats = recorder.stats().participants
        assert any(p.failed for p in stats.values())
        # A disk full at once for both is told once, not once per participant or frame.
        two_people(clips, 4.0, 5.0).feed(recorder)
        await recorder.wait_written()
        assert len(failed.reasons) == 1

        results = await recorder.aclose()
        # The remux needs room too: what could not be finalised stays for recovery.
        assert leftovers(staging / "call-full") == []
        for manifest in (staging / "call-full").glob("*.recording.json"):
            json.loads(manifest.read_text())  # never torn, never empty

        filler.unlink()
        if not results:
            recovered = [recover_recording(m) for m in find_unfinished_recordings(staging)]
        else:
            recovered = results
        assert recovered, "what was written before the disk filled must be recoverable"
        for recording in recovered:
            assert recording.interrupted is True
            assert recording.duration >= 1.0
            assert probe(recording.path).decode_errors == 0


async def test_a_disk_full_before_the_first_manifest_leaves_no_empty_tmp(
    tmp_path: Path, clips: Clips
) -> None:
    with small_tmpfs(tmp_path / "staging", 1024 * 1024) as staging:
        directory = staging / "call-nospace"
        directory.mkdir()
        fill_file_system(staging)
        failed = FailureListener()
        recorder = CallRecorder(
            "call-nospace", directory, max_pending_frames=ROOMY, on_failure=failed
        )
        two_people(clips, 0.0, 3.0).feed(recorder)
        await recorder.wait_written()
        await asyncio.wait_for(failed.told.wait(), 10)
        assert await recorder.aclose() == []
        # Before the fix a 0-byte alice.recording.json.tmp stayed here, unreadable forever.
        assert leftovers(directory) == []
        assert recoverable_manifests(staging) == []


async def test_a_call_over_its_staging_budget_stops_recording_and_says_so(
    tmp_path: Path, clips: Clips
) -> None:
    budget = 150_000
    failed = FailureListener()
    recorder = CallRecorder(
        "call-budget",
        tmp_path,
        max_pending_frames=ROOMY,
        max_staging_bytes=budget,
        on_failure=failed,
    )
    two_people(clips, 0.0, 6.0).feed(recorder)
    await recorder.wait_written()
    await asyncio.wait_for(failed.told.wait(), 10)
    assert failed.reasons == [f"over the staging budget of {budget} bytes"]
    results = await recorder.aclose()
    on_disk = sum(r.size for r in results)
    largest_frame = max(len(data) for data, _key in clips.vp8)
    # Media bytes stop at the budget (plus the frame that crossed it and container bytes).
    assert on_disk <= (budget + largest_frame) * 1.1, on_disk
    assert results and all(r.interrupted for r in results)
    assert all(r.duration < 5.0 for r in results)
    assert all(probe(r.path).decode_errors == 0 for r in results)


async def test_a_generous_budget_records_everything(tmp_path: Path, clips: Clips) -> None:
    failed = FailureListener()
    recorder = CallRecorder(
        "call-roomy", tmp_path, max_pending_frames=ROOMY, max_staging_bytes=50_000_000,
        on_failure=failed,
    )  # fmt: skip
    two_people(clips, 0.0, 2.0).feed(recorder)
    results = await recorder.aclose()
    assert failed.reasons == []
    assert len(results) == 2 and not any(r.interrupted for r in results)
    assert all(r.video_frames == 2 * FPS for r in results)


async def test_recovery_settles_every_leftover_a_crash_or_a_full_disk_leaves(
    tmp_path: Path, clips: Clips
) -> None:
    live, crashed = tmp_path / "live", tmp_path / "staging" / "call-left"
    script = CallScript()
    for person in ("alice", "bob", "carol", "dave"):
        script.audio(person, clips.opus, 0.0, 2.0)
        script.video(person, "VP8", clips.vp8, 0.0, 2.0)
    recorder = CallRecorder("call-left", live, max_pending_frames=ROOMY)
    try:
        script.feed(recorder)
        await recorder.wait_written()
        crashed.mkdir(parents=True)
        for path in live.iterdir():
            shutil.copyfile(path, crashed / path.name)
    finally:
        await recorder.aclose()

    # alice: her manifest torn mid-write (an old build wrote it without fsync).
    torn = crashed / "alice.recording.json"
    torn.write_bytes(torn.read_bytes()[:40])
    # bob: a complete manifest that was never renamed (a crash between write and rename).
    (crashed / "bob.recording.json").rename(crashed / "bob.recording.json.tmp")
    # carol: a stale .tmp beside her manifest.
    (crashed / "carol.recording.json.tmp").write_bytes(b"")
    # dave: his manifest lost; only the parts are there.
    (crashed / "dave.recording.json").unlink()
    # erin: the 0-byte .tmp a full disk left before any part existed.
    (crashed / "erin.recording.json.tmp").write_bytes(b"")
    # frank: a torn manifest and nothing else.
    (crashed / "frank.recording.json").write_bytes(b"{")

    manifests = recoverable_manifests(tmp_path / "staging")
    assert [m.name for m in manifests] == [
        f"{p}.recording.json" for p in ("alice", "bob", "carol", "dave")
    ]
    assert leftovers(crashed) == []
    recovered = {}
    for manifest in find_unfinished_recordings(tmp_path / "staging"):
        recording = recover_recording(manifest)
        recovered[recording.participant_id] = recording
    assert sorted(recovered) == ["alice", "bob", "carol", "dave"]
    for recording in recovered.values():
        assert recording.call_id == "call-left"
        assert recording.interrupted is True
        assert recording.video_frames > 0 and recording.audio_frames > 0
        assert probe(recording.path).decode_errors == 0
    # Still there for an operator, never a crash of recovery.
    assert (crashed / "frank.recording.json").exists()
