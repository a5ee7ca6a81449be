"""A whole call through the real server and bridge is recorded: two files reopened with
PyAV and checked by ffprobe, frame counts equal to what was forwarded, and the review
sample drawn (forced to 1.0 here) puts the call in the reviewers' queue.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import av
import pytest
from sqlalchemy import select

from recorder import CallRecorder
from recorder.storage import StorageError
from server.appkeys import DB, RECORDING_STORAGE, RECORDINGS
from server.db.models import Recording
from server.settings import Settings
from tests.support.review_data import seed_reviewable_call
from tests.support.rtc_client import CallHarness
from tests.support.service import make_settings
from tests.support.tools import require_tool

pytestmark = [pytest.mark.integration, pytest.mark.needs_ffmpeg]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, review_sample_rate=1.0)


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
    recorder = calls.local_media(call_id).sink
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
    senders = {seller.ws.user_id: seller, buyer.ws.user_id: buyer}
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
        # The file spans what its participant sent (30 fps clip): the timeline is kept.
        sent_span = len(senders[rec.participant_id].media.sources["video"].sent) / 30
        assert abs(duration - sent_span) < 0.5, (duration, sent_span)
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
    # The recording starts at a participant's first frame, which can be before the other
    # leg connected: the other side received a suffix of what was recorded.
    for sender, receiver in ((seller, buyer), (buyer, seller)):
        received = len(receiver.media.received["video"])
        recorded = stats.participants[sender.ws.user_id].video_frames_received
        assert 0 < received <= recorded, (recorded, received)

    stored = await calls.call_row(call_id)
    assert stored.review_required is True
    assert stored.sampled is True
    assert stored.sample_rate == 1.0
    assert stored.sample_key_id == "k1"
    assert stored.sample_draw is not None and 0 <= stored.sample_draw < 1

    # The reviewer's timeline shares the recordings' clock: zero is the first recorded
    # frame. It falls inside the call, but on either side of ``connected_at``: the seller's
    # leg can send while the call still rings, or its first frame can arrive after the call
    # became active (no ordering between the two is promised).
    assert stored.recording_started_at is not None and stored.ended_at is not None
    assert stored.created_at <= stored.recording_started_at <= stored.ended_at
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


async def test_a_failed_upload_keeps_the_recording_for_the_next_start(
    calls: CallHarness, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = calls.app[RECORDING_STORAGE]
    real_put = store.put

    async def storage_down(key: str, local_path: Path) -> object:
        raise StorageError("storage unreachable", retryable=True)

    monkeypatch.setattr(store, "put", storage_down)
    call_id, seller, buyer = await calls.connected_call()
    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)

    row = await calls.call_row(call_id)
    assert row.sampled is True  # the review decision is written even so
    async with calls.app[DB]() as session:
        stored = (
            await session.scalars(select(Recording).where(Recording.call_id == call_id))
        ).all()
    assert stored == []
    staged = sorted(p.name for p in (settings.data_dir / "recording-staging" / call_id).iterdir())
    assert [n for n in staged if n.endswith(".webm")], staged

    monkeypatch.setattr(store, "put", real_put)
    assert await calls.app[RECORDINGS].recover_interrupted() == [call_id]
    async with calls.app[DB]() as session:
        stored = (
            await session.scalars(select(Recording).where(Recording.call_id == call_id))
        ).all()
    assert sorted(r.state for r in stored) == ["finalised", "finalised"]
    assert not (settings.data_dir / "recording-staging" / call_id).exists()
    assert (await calls.call_row(call_id)).review_required is True


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
