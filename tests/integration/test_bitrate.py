"""Receiver-driven bitrate and the per-leg ceiling, with real aiortc peers on loopback.

The buyer reaches the bridge through a UDP shaper (``tests/support/udp_shaper.py``, its
own process) whose downlink the tests constrain. The seller's video is pre-encoded at
three bitrates and follows the REMB the bridge sends it, as a browser's encoder does
(Chromium cannot be routed through the shaper without rewriting its signalling, so
these peers stand in for it; they run aiortc's own bandwidth estimator and REMB).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from signaling.call_state import FailureDetail
from signaling.media_bandwidth import BandwidthSettings
from signaling.media_bridge import BridgeSettings, CallMediaBridge
from tests.support.bitrate_scenario import run_scenario
from tests.support.encoded_media import EncodedClip, EncodedPacket, encoded_clip
from tests.support.media_peers import MediaClient, Progress, server_media_port
from tests.support.udp_shaper import UdpShaperProcess

pytestmark = pytest.mark.integration


async def test_the_receivers_downlink_sets_the_senders_bitrate() -> None:
    limit = 450_000
    figures = await run_scenario(receiver_driven=True, limit_bps=limit, constrained_s=16)
    # The seller's outgoing video fits the buyer's downlink within 10 s...
    assert figures.adapted_after_s is not None and figures.adapted_after_s <= 10, figures
    assert min(figures.remb_kbps[:10]) * 1000 < limit, figures.remb_kbps
    # ... and stays there.
    assert figures.adapted_after_s is not None
    settled = figures.sent_kbps[int(figures.adapted_after_s) :]
    assert max(settled) * 1000 < limit, figures.sent_kbps
    # The buyer's audio never stops (the second before the first REMB, when the seller
    # still sends its full rate into the limit, may cost a few frames).
    assert figures.audio_frames_expected > 600
    assert figures.audio_frames_missing <= figures.audio_frames_expected * 0.1, figures
    assert figures.audio_longest_gap_s < 1.0, figures.audio_gaps
    # Its video plays on after the adaptation without a freeze over 1 s.
    assert figures.freezes_after_adaptation.longest_s <= 1.0, figures.freezes_after_adaptation
    playing = 16 - figures.adapted_after_s
    assert figures.video_frames_decodable >= 20 * playing, figures
    assert figures.notices == []  # nothing was paused


async def test_video_pauses_on_a_link_too_weak_for_it_and_resumes_when_it_recovers() -> None:
    figures = await run_scenario(
        receiver_driven=True,
        limit_bps=90_000,
        constrained_s=12,
        unconstrained_after_s=18,
        # The first probe comes after the link is back (a probe on a link still too weak
        # costs the receiver's audio up to a second or two; the bench shows it).
        settings=BandwidthSettings(video_probe_after_s=(9.0,), video_probe_s=2.0),
    )
    paused = [at for at, who, notice in figures.notices if notice == "video_paused"]
    resumed = [at for at, who, notice in figures.notices if notice == "video_resumed"]
    assert {who for _, who, _ in figures.notices} == {"b"}, figures.notices
    assert paused and paused[0] <= 10, figures.notices
    assert figures.final_stats is not None
    assert figures.final_stats.stream("b", "video").frames_out_paused > 0
    # While paused, audio keeps flowing.
    assert not [gap for at, gap in figures.audio_gaps if paused[0] + 1 < at < 12 and gap > 1.0], (
        figures.audio_gaps
    )
    # Once the link is back, a probe finds it and video comes back, from a keyframe.
    assert resumed and resumed[-1] > 12, figures.notices
    assert figures.video_frames_after_resume > 0


def _oversized(clip: EncodedClip, size: int) -> EncodedClip:
    """The clip with every video frame padded to ``size`` bytes (a bridge never decodes)."""
    video = tuple(EncodedPacket(p.data + bytes(size - len(p.data)), p.keyframe) for p in clip.video)
    return EncodedClip(
        video=video, audio=clip.audio, fps=clip.fps, width=clip.width, height=clip.height
    )


class _FailureLog:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.failures: list[tuple[str, FailureDetail, float]] = []

    def __call__(self, participant_id: str, detail: FailureDetail) -> None:
        self.failures.append((participant_id, detail, time.monotonic()))
        self.progress.notify()


@pytest.fixture
async def ceiling_call(clip: EncodedClip) -> AsyncIterator[tuple[CallMediaBridge, _FailureLog]]:
    progress = Progress()
    failures = _FailureLog(progress)
    bridge = CallMediaBridge(
        "call-ceiling",
        on_failure=failures,
        settings=BridgeSettings(
            bandwidth=BandwidthSettings(max_leg_bitrate_bps=1_000_000, police_end_after_s=4.0)
        ),
    )
    try:
        yield bridge, failures
    finally:
        await bridge.aclose()


async def test_a_leg_far_above_the_ceiling_is_cut_down_then_ended(
    ceiling_call: tuple[CallMediaBridge, _FailureLog], clip: EncodedClip
) -> None:
    bridge, failures = ceiling_call
    progress = failures.progress
    abuser = MediaClient(_oversized(encoded_clip(), 60_000), progress)
    peer = MediaClient(clip, progress)
    try:
        answer = await bridge.accept_offer("abuser", await abuser.create_offer())
        # The ceiling is advertised where browsers read their send limit.
        video = answer[answer.index("m=video") :]
        assert "b=AS:1000" in video and "b=TIAS:1000000" in video
        await abuser.accept_answer(answer)
        await peer.accept_answer(await bridge.accept_offer("peer", await peer.create_offer()))
        await abuser.wait_connected()
        await peer.wait_connected()
        started = time.monotonic()
        await progress.wait_for(lambda: bool(failures.failures), "the leg ended", 20)
        who, detail, ended_at = failures.failures[0]
        assert (who, detail) == ("abuser", FailureDetail.BITRATE_EXCEEDED)
        assert ended_at - started < 20
        stats = bridge.stats().stream("abuser", "video")
        # Cut down first: most frames were neither forwarded nor recorded, and the
        # sender was asked for keyframes to resume on.
        assert stats.frames_over_budget > stats.frames_in / 2, stats
        assert abuser.sources["video"].keyframe_requests > 0
        received = peer.received["video"]
        seconds = ended_at - started
        forwarded_bps = sum(len(f.data) for f in received.frames) * 8 / seconds
        # 60 KB at 30 fps is 14.4 Mbit/s; what got through stayed near the ceiling
        # (1.5x tolerance, plus one second of burst over a few seconds).
        assert forwarded_bps < 3_000_000, forwarded_bps
        assert len(failures.failures) == 1  # told once
    finally:
        await abuser.close()
        await peer.close()


async def test_nacks_are_answered_on_both_hops(clip: EncodedClip) -> None:
    """2 % of datagrams lost each way on both legs: without retransmission, a few percent
    of the frames (several packets each) would never arrive."""
    progress = Progress()
    bridge = CallMediaBridge("call-nack")
    seller = MediaClient(clip, progress, max_video_frames=240)
    buyer = MediaClient(clip, progress)
    try:
        seller_answer = await bridge.accept_offer(
            "s", await seller.create_offer(without_candidates=True)
        )
        buyer_answer = await bridge.accept_offer(
            "b", await buyer.create_offer(without_candidates=True)
        )
        async with (
            UdpShaperProcess(server_media_port(seller_answer)) as seller_link,
            UdpShaperProcess(server_media_port(buyer_answer)) as buyer_link,
        ):
            for link in (seller_link, buyer_link):
                for direction in ("up", "down"):
                    await link.set(direction, loss=0.02)
            await seller.accept_answer_through(seller_answer, seller_link.port)
            await buyer.accept_answer_through(buyer_answer, buyer_link.port)
            await seller.wait_connected()
            await buyer.wait_connected()
            await progress.wait_for(
                lambda: len(seller.sources["video"].sent) >= 240, "the seller's clip sent", 30
            )
            await asyncio.sleep(1.5)
            lost = (await seller_link.stats())["up"].dropped_loss
            lost += (await buyer_link.stats())["down"].dropped_loss
        sent = [data for _, data in seller.sources["video"].sent]
        got = [f.data for f in buyer.received["video"].frames]
        first = sent.index(got[0])  # the buyer starts on a keyframe
        # Each hop's jitter buffer holds back the latest frame.
        expected = sent[first:-2]
        assert lost > 20  # the shapers did drop packets
        assert len(expected) > 200
        assert got[: len(expected)] == expected
    finally:
        await seller.close()
        await buyer.close()
        await bridge.aclose()
