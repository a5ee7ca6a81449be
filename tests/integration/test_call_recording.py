"""A whole call through the real server and bridge is recorded: two files reopened with
PyAV and checked by ffprobe, frame counts equal to what was forwarded, and the review
sample drawn (forced to 1.0 here) puts the call in the reviewers' queue.
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import av
import pytest
from sqlalchemy import select

from recorder import CallRecorder
from server.appkeys import DB, RECORDINGS, RETENTION_JOB
from server.clock import utcnow
from server.db.models import Recording
from server.settings import Settings
from tests.support.review_data import seed_reviewable_call
from tests.support.rtc_client import CallHarness
from tests.support.service import make_settings
from tests.support.tools import require_tool

pytestmark = [pytest.mark.integration, pytest.mark.needs_ffmpeg]


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    overrides = getattr(request, "param", {})
    return make_settings(tmp_path, review_sample_rate=1.0, **overrides)


def block_storage(settings: Settings, call_id: str) -> Path:
    """Make the storage unable to write this call's files, for real: its directory's path
    is taken by a regular file (permission bits would not stop the root user tests may
    run as). Answers the blocker; unlinking it lets the storage recover."""
    blocker = settings.resolved_recordings_dir / call_id
    blocker.write_bytes(b"")
    return blocker


async def call_ended_with_storage_blocked(
    calls: CallHarness, settings: Settings
) -> tuple[str, Path]:
    """A connected call whose storage fails as it ends; answers its id and the blocker."""
    call_id, seller, buyer = await calls.connected_call()
    await calls.recording_video_of_both(call_id)
    blocker = block_storage(settings, call_id)
    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    return call_id, blocker


async def recording_rows(calls: CallHarness, call_id: str) -> list[Recording]:
    async with calls.app[DB]() as session:
        rows = await session.scalars(select(Recording).where(Recording.call_id == call_id))
        return list(rows.all())


def packet_counts(path: Path) -> tuple[dict[str, str], dict[str, int], float]:
    with av.open(str(path)) as container:
        codecs = {s.type: s.codec_context.name for s in container.streams}
        counts = {"video": 0, "audio": 0}
        for packet in container.demux():
            if packet.size:
                counts[packet.stream.type] += 1
        duration = float(container.duration or 0) / av.time_base
    return codecs, counts, duration


async def test_a_call_through_the_bridge_yields_two_checked_recordings(
    calls: CallHarness, settings: Settings
) -> None:
    ffprobe = require_tool("ffprobe")
    call_id, seller, buyer = await calls.connected_call()
    await calls.progress.wait_for(
        lambda: all(len(p.media.received["video"]) >= 90 for p in (seller, buyer)),
        "3 s of video both ways",
    )
    media = calls.local_media(call_id)
    recorder, bridge = media.sink, media.bridge
    assert isinstance(recorder, CallRecorder)
    await seller.ws.ok("hang_up", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    stats = recorder.stats()

    async with calls.app[DB]() as session:
        recordings = (
            await session.scalars(select(Recording).where(Recording.call_id == call_id))
        ).all()
    assert {r.participant_id for r in recordings} == {seller.ws.user_id, buyer.ws.user_id}
    assert row.connected_at is not None and row.ended_at is not None
    ends: list[float] = []
    for rec in recordings:
        assert rec.state == "finalised"
        assert rec.mime_type == "video/webm"
        path = settings.resolved_recordings_dir / rec.storage_key
        codecs, counts, duration = packet_counts(path)
        assert codecs == {"video": "vp8", "audio": "opus"}
        written = stats.participants[rec.participant_id]
        # Every forwarded frame reached the file, except video before the first keyframe.
        assert (
            counts["video"]
            == written.video_frames_received
            - (written.video_dropped_awaiting_keyframe + written.video_dropped_camera_off)
            + written.black_frames_inserted
        )
        assert counts["audio"] == written.audio_frames_received + written.silence_frames_inserted
        assert rec.video_frames == counts["video"]
        # The file spans the media it holds (a 30 fps clip, camera never off): the timeline
        # neither shrinks nor stretches. Media time, not wall time: a loaded machine makes
        # the replaying peers late, and the files follow the senders' RTP clocks.
        media_span = counts["video"] / 30
        assert abs(duration - media_span) < 0.5, (duration, media_span)
        ends.append(rec.start_offset + duration)
        assert rec.size == path.stat().st_size
        probe = subprocess.run(
            [ffprobe, "-v", "error", "-show_format", "-show_streams", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode == 0, probe.stderr
        assert "codec_name=vp8" in probe.stdout
        assert "codec_name=opus" in probe.stdout
    # Both files run on one call clock and end together, at the hang-up.
    assert abs(ends[0] - ends[1]) < 0.5, ends
    # The recording starts when the call became active, after both legs connected: it
    # holds a suffix of what the bridge took in from each sender, and no more.
    for sender in (seller, buyer):
        taken_in = bridge.stats().stream(sender.ws.user_id, "video").frames_in
        recorded = stats.participants[sender.ws.user_id].video_frames_received
        assert 0 < recorded <= taken_in, (recorded, taken_in)

    stored = await calls.call_row(call_id)
    assert stored.review_required is True
    assert stored.sampled is True
    assert stored.sample_rate == 1.0
    assert stored.sample_key_id == "k1"
    assert stored.sample_draw is not None and 0 <= stored.sample_draw < 1

    # The reviewer's timeline shares the recordings' clock: zero is the first recorded
    # frame, at or after the moment the call became active (recording scope).
    assert stored.recording_started_at is not None and stored.connected_at is not None
    assert stored.ended_at is not None
    assert stored.connected_at <= stored.recording_started_at <= stored.ended_at
    await calls.host.user("rev", "reviewer")
    reviewer, _ = await calls.signed_in("rev")
    detail = await (await reviewer.get(f"/api/v1/review/calls/{call_id}")).json()
    anchor = datetime.fromisoformat(detail["recording_started_at"])
    assert anchor == stored.recording_started_at
    for event in detail["events"]:
        expected = (datetime.fromisoformat(event["at"]) - anchor).total_seconds()
        assert event["offset"] == pytest.approx(expected, abs=0.001)


async def test_a_report_after_the_call_makes_review_mandatory(
    calls: CallHarness, settings: Settings
) -> None:
    # The module samples everything; turn the draw off for this call via the admin policy.
    await calls.host.user("adm", "admin")
    admin, csrf = await calls.signed_in("adm")
    resp = await admin.put(
        "/api/v1/admin/policy", json={"review_sample_rate": 0.0}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 200
    call_id, seller, buyer = await calls.connected_call()
    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    before = await calls.call_row(call_id)
    assert (before.sampled, before.review_required, before.sample_rate) == (False, False, 0.0)

    buyer_http, buyer_csrf = await calls.signed_in(buyer.ws.user_id)
    resp = await buyer_http.post(
        f"/api/v1/calls/{call_id}/report",
        json={"reason": "off_platform_contact", "details": "asked for my phone number"},
        headers={"X-CSRF-Token": buyer_csrf},
    )
    assert resp.status == 201, await resp.text()
    after = await calls.call_row(call_id)
    assert after.review_required is True
    assert after.sampled is False  # the draw itself is kept as it was
    assert after.mandatory_reasons == ["reported_by_participant"]
    queue = await (await admin.get("/api/v1/review/queue?kind=mandatory")).json()
    assert [c["call_id"] for c in queue["calls"]] == [call_id]


# The retry task waits far longer than this test: only the next start stores the files.
@pytest.mark.parametrize("settings", [{"upload_retry_initial_seconds": 3600}], indirect=True)
async def test_a_failed_upload_keeps_the_recording_for_the_next_start(
    calls: CallHarness, settings: Settings
) -> None:
    call_id, blocker = await call_ended_with_storage_blocked(calls, settings)

    row = await calls.call_row(call_id)
    assert row.sampled is True  # the review decision is written even so
    assert {r.state for r in await recording_rows(calls, call_id)} == {"pending_upload"}
    staged = sorted(p.name for p in (settings.data_dir / "recording-staging" / call_id).iterdir())
    assert [n for n in staged if n.endswith(".webm")], staged

    blocker.unlink()
    assert await calls.app[RECORDINGS].recover_interrupted() == [call_id]
    stored = await recording_rows(calls, call_id)
    assert sorted(r.state for r in stored) == ["finalised", "finalised"]
    assert not (settings.data_dir / "recording-staging" / call_id).exists()
    assert (await calls.call_row(call_id)).review_required is True
    assert calls.app[RECORDINGS].uploads_waiting == 0


@pytest.mark.parametrize("settings", [{"upload_retry_initial_seconds": 0.2}], indirect=True)
async def test_a_failed_upload_is_retried_and_the_drawn_call_waits_in_the_queue(
    calls: CallHarness, settings: Settings
) -> None:
    call_id, blocker = await call_ended_with_storage_blocked(calls, settings)
    recordings = calls.app[RECORDINGS]

    # Drawn, nothing stored yet: queued at once, its recordings said to be on their way.
    assert (await calls.call_row(call_id)).review_required is True
    await calls.host.user("rev", "reviewer")
    reviewer, csrf = await calls.signed_in("rev")
    queue = await (await reviewer.get("/api/v1/review/queue?kind=sampled")).json()
    assert [c["call_id"] for c in queue["calls"]] == [call_id]
    detail = await (await reviewer.get(f"/api/v1/review/calls/{call_id}")).json()
    assert {r["state"] for r in detail["recordings"]} == {"pending_upload"}
    replay = await reviewer.post(
        f"/api/v1/review/recordings/{detail['recordings'][0]['id']}/replay",
        headers={"X-CSRF-Token": csrf},
    )
    assert replay.status == 409
    assert (await replay.json())["error"]["code"] == "recording_not_ready"
    # Retention keeps what is not stored yet.
    assert await calls.app[RETENTION_JOB].run_once(utcnow() + timedelta(days=400)) == []

    # Still failing: the task keeps trying (backing off) and loses nothing.
    async with asyncio.timeout(30):
        assert await recordings.next_retry_round() == 2
        assert await recordings.next_retry_round() == 2

    blocker.unlink()  # the storage recovers; no restart needed
    async with asyncio.timeout(30):
        while await recordings.next_retry_round():
            pass
    stored = await recording_rows(calls, call_id)
    assert sorted(r.state for r in stored) == ["finalised", "finalised"]
    for rec in stored:
        path = settings.resolved_recordings_dir / rec.storage_key
        assert path.stat().st_size == rec.size
        codecs, counts, _duration = packet_counts(path)
        assert codecs == {"video": "vp8", "audio": "opus"} and counts["video"] > 0
    assert not (settings.data_dir / "recording-staging" / call_id).exists()
    replay = await reviewer.post(
        f"/api/v1/review/recordings/{stored[0].id}/replay", headers={"X-CSRF-Token": csrf}
    )
    assert replay.status == 200


async def test_a_violation_verdict_ends_the_violators_live_call(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    seller_id = seller.ws.user_id
    row = await calls.call_row(call_id)
    # An earlier call of the same seller, reviewed while this one is live.
    await seed_reviewable_call(
        calls.app,
        call_id="earlier",
        thread_id=row.thread_id,
        seller_id=seller_id,
        buyer_id=buyer.ws.user_id,
    )
    await calls.host.user("rev", "reviewer")
    reviewer, csrf = await calls.signed_in("rev")
    headers = {"X-CSRF-Token": csrf}
    assert (
        await reviewer.post("/api/v1/review/calls/earlier/claim", headers=headers)
    ).status == 200
    resp = await reviewer.post(
        "/api/v1/review/calls/earlier/verdict",
        json={"verdict": "abusive", "subject_user_id": seller_id},
        headers=headers,
    )
    assert resp.status == 200
    ended = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (ended.end_reason, ended.end_detail) == ("ineligible", "account_restricted")


async def test_a_call_declined_after_the_seller_connected_keeps_no_recording(
    calls: CallHarness, settings: Settings
) -> None:
    """Recording scope: only a call that became active is recorded. The seller's media
    flows while it rings, the buyer declines: no file, no row, never drawn, not queued
    (everything is drawn in this module: sample rate 1.0)."""
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair("declined")
    seller = await calls.participant(seller_id)
    buyer = await calls.participant(buyer_id)
    call_id = await calls.ring(seller, buyer, thread_id)
    await seller.connect_media(call_id)
    await seller.media.wait_connected()
    await buyer.ws.ok("decline_call", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert row.end_reason == "declined" and row.connected_at is None
    async with calls.app[DB]() as session:
        recordings = (
            await session.scalars(select(Recording).where(Recording.call_id == call_id))
        ).all()
    assert recordings == []
    assert not (settings.recording_staging_dir / call_id).exists()
    assert not (settings.resolved_recordings_dir / call_id).exists()
    assert row.review_required is False and row.recording_started_at is None
    await calls.host.user("rev-declined", "reviewer")
    reviewer, _ = await calls.signed_in("rev-declined")
    queue = await (await reviewer.get("/api/v1/review/queue?kind=all")).json()
    assert call_id not in {item["call_id"] for item in queue["calls"]}
