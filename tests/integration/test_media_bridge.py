"""The media bridge between two real aiortc peers on loopback.

The clients send a pre-encoded VP8 + Opus clip and receive through the encoded-frame tap,
so the only codec work in this process is the clip's one-off encoding at setup; the
tests then assert that nothing constructs an encoder or decoder while calls run.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiortc
import aiortc.codecs
import aiortc.codecs.h264
import aiortc.codecs.opus
import aiortc.codecs.vpx
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest

from signaling import aiortc_patches
from signaling.media_bridge import BridgeSettings, CallMediaBridge
from signaling.media_errors import (
    InvalidCandidateError,
    MediaNegotiationError,
    UnknownParticipantError,
)
from signaling.media_sink import EncodedFrame, MediaKind
from tests.support.encoded_media import EncodedClip
from tests.support.media_peers import MediaClient, Progress
from tests.support.rtc_client import CodecSpy

pytestmark = pytest.mark.integration

# The receiving jitter buffer hands a frame on only once the next one starts (video) or
# four later ones are complete (audio), so a receiver always holds these back.
JITTER_LAG = {"video": 1, "audio": 4}


class CountingSink:
    """An ``EncodedFrameSink`` that counts and keeps what it is given."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.frames: list[EncodedFrame] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.media_states: list[tuple[str, MediaKind, bool, float]] = []

    def on_frame(self, frame: EncodedFrame) -> None:
        self.frames.append(frame)
        self.counts[frame.participant_id, frame.kind] += 1
        self.progress.notify()

    def on_media_state(
        self, participant_id: str, kind: MediaKind, enabled: bool, at: float
    ) -> None:
        self.media_states.append((participant_id, kind, enabled, at))

    def of(self, participant_id: str, kind: str) -> list[EncodedFrame]:
        return [f for f in self.frames if f.participant_id == participant_id and f.kind == kind]


class Call:
    """A bridge with its sink, state log and the clients that joined it."""

    def __init__(self, clip: EncodedClip, settings: BridgeSettings | None = None) -> None:
        self.clip = clip
        self.progress = Progress()
        self.sink = CountingSink(self.progress)
        self.leg_states: list[tuple[str, str]] = []
        self.bridge = CallMediaBridge(
            "call-test",
            sink=self.sink,
            on_leg_state=self._on_leg_state,
            settings=settings or BridgeSettings(),
        )
        self.clients: list[MediaClient] = []

    def _on_leg_state(self, participant_id: str, state: str) -> None:
        self.leg_states.append((participant_id, state))
        self.progress.notify()

    def states_of(self, participant_id: str) -> list[str]:
        return [s for p, s in self.leg_states if p == participant_id]

    def client(self, **kwargs: Any) -> MediaClient:
        client = MediaClient(self.clip, self.progress, **kwargs)
        self.clients.append(client)
        return client

    async def join(self, participant_id: str, **kwargs: Any) -> MediaClient:
        client = self.client(**kwargs)
        answer = await self.bridge.accept_offer(participant_id, await client.create_offer())
        await client.accept_answer(answer)
        await client.wait_connected()
        await self.progress.wait_for(
            lambda: self.bridge.leg_state(participant_id) == "connected",
            f"{participant_id}'s leg connected",
        )
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.bridge.aclose()


@pytest.fixture
async def call(clip: EncodedClip) -> AsyncIterator[Call]:
    call = Call(clip)
    try:
        yield call
    finally:
        await call.close()


def assert_in_order_slice(received: list[bytes], sent: list[bytes]) -> None:
    """``received`` is a contiguous run of ``sent``, in order, nothing lost or repeated."""
    assert received, "nothing received"
    starts = [i for i, data in enumerate(sent) if data == received[0]]
    assert any(sent[i : i + len(received)] == received for i in starts), (
        "received frames are not a contiguous, in-order run of the sent frames"
    )


async def test_forwards_both_ways_without_any_codec(
    clip: EncodedClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = CodecSpy(monkeypatch)
    call = Call(clip)
    try:
        frames = {"video": 75, "audio": 125}
        seller = await call.join(
            "seller", max_video_frames=frames["video"], max_audio_frames=frames["audio"]
        )
        buyer = await call.join(
            "buyer", max_video_frames=frames["video"], max_audio_frames=frames["audio"]
        )
        bridge = call.bridge
        pairs = (("seller", seller, "buyer", buyer), ("buyer", buyer, "seller", seller))

        def settled() -> bool:
            stats = bridge.stats()
            for source_id, _source, sink_id, receiver in pairs:
                for kind in ("audio", "video"):
                    lag = JITTER_LAG[kind]
                    if stats.stream(source_id, kind).frames_in != frames[kind] - lag:
                        return False
                    if len(receiver.received[kind]) != stats.stream(sink_id, kind).frames_out - lag:
                        return False
            return True

        await call.progress.wait_for(settled, "every sent frame to cross the bridge")

        stats = bridge.stats()
        assert stats.video_codec == "VP8"
        for source_id, source, sink_id, receiver in pairs:
            for kind in ("audio", "video"):
                got = receiver.received[kind]
                sent = [data for _pts, data in source.sources[kind].sent]
                assert_in_order_slice([f.data for f in got.frames], sent)
                timestamps = [f.timestamp for f in got.frames]
                assert timestamps == sorted(set(timestamps))
                assert got.codecs == {"VP8" if kind == "video" else "opus"}
                out = stats.stream(sink_id, kind)
                assert out.frames_out_dropped == 0
                # Everything the source sent, except what the buyer missed while it was
                # still connecting, reached the other side.
                assert out.frames_out >= frames[kind] // 2
                assert len(got) == out.frames_out - JITTER_LAG[kind]
                assert call.sink.counts[source_id, kind] == (
                    stats.stream(source_id, kind).frames_in
                    - stats.stream(source_id, kind).frames_in_awaiting_keyframe
                )
            assert receiver.received["video"].frames[0].keyframe

        assert spy.calls == Counter(), f"codecs were constructed: {spy.calls}"
    finally:
        await call.close()

    # The spy can fail: a stock sender path builds an Opus encoder and its context.
    opus = aiortc.codecs.CODECS["audio"][0]
    aiortc.rtcrtpsender.get_encoder(opus)
    assert spy.calls["get_encoder"] == 1
    assert spy.calls["OpusEncoder"] == 1
    assert spy.calls["CodecContext.create"] == 1


async def test_new_consumer_waits_for_a_keyframe_which_is_requested(call: Call) -> None:
    seller = await call.join("seller")
    # Let the seller get well into a group of pictures before the buyer arrives.
    await call.progress.wait_for(
        lambda: call.bridge.stats().stream("seller", "video").frames_in >= 10,
        "seller video flowing",
    )
    requests_before = seller.sources["video"].keyframe_requests
    buyer = await call.join("buyer")
    await call.progress.wait_for(lambda: len(buyer.received["video"]) >= 5, "buyer video")

    assert buyer.received["video"].frames[0].keyframe
    assert seller.sources["video"].keyframe_requests > requests_before
    assert call.bridge.stats().stream("seller", "video").keyframe_requests_sent >= 1


async def test_picture_loss_is_forwarded_to_the_sender_rate_limited(call: Call) -> None:
    seller = await call.join("seller")
    buyer = await call.join("buyer")
    await call.progress.wait_for(lambda: len(buyer.received["video"]) >= 10, "buyer video")
    # Wait out the attach-time request's rate-limit window (frames are the clock).
    await call.progress.wait_for(lambda: len(buyer.received["video"]) >= 30, "more buyer video")
    before = seller.sources["video"].keyframe_requests

    for _ in range(5):
        await buyer.send_picture_loss_indication()
    await call.progress.wait_for(
        lambda: call.bridge.stats().stream("buyer", "video").keyframe_requests_received == 5,
        "the bridge to hear five PLIs",
    )
    await call.progress.wait_for(
        lambda: seller.sources["video"].keyframe_requests > before, "the PLI to reach the seller"
    )
    # A full rate-limit window later (about 20 frames at 30 fps) no more went through:
    # the keyframe that answered the first PLI satisfied the other four.
    mark = len(buyer.received["video"])
    await call.progress.wait_for(lambda: len(buyer.received["video"]) >= mark + 20, "buyer video")
    assert seller.sources["video"].keyframe_requests == before + 1
    assert call.bridge.stats().keyframe_requests_forwarded >= 5


async def test_zero_length_datagrams_do_not_end_the_call(call: Call) -> None:
    seller = await call.join("seller")
    buyer = await call.join("buyer")
    await call.progress.wait_for(lambda: len(buyer.received["video"]) >= 5, "buyer video")

    ports = seller.server_candidate_ports() + buyer.server_candidate_ports()
    assert len(ports) == 2
    dropped_before = aiortc_patches.datagram_drop_counts().empty
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for port in ports:
            for _ in range(3):
                udp.sendto(b"", ("127.0.0.1", port))
    await call.progress.wait_for(
        lambda: aiortc_patches.datagram_drop_counts().empty >= dropped_before + 6,
        "the empty datagrams to arrive",
    )

    marks = {c: (len(c.received["video"]), len(c.received["audio"])) for c in (seller, buyer)}
    await call.progress.wait_for(
        lambda: all(
            len(c.received["video"]) >= v + 30 and len(c.received["audio"]) >= a + 50
            for c, (v, a) in marks.items()
        ),
        "media to keep flowing both ways",
    )
    assert call.states_of("seller") == ["connecting", "connected"]
    assert call.states_of("buyer") == ["connecting", "connected"]
    assert seller.states[-1] == buyer.states[-1] == "connected"


async def test_zero_length_datagram_ends_a_call_without_the_patch(
    call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shows the regression test above can fail: stock aioice lets one empty datagram
    close the leg."""
    seller = await call.join("seller")
    monkeypatch.setattr(
        aiortc_patches.aioice.ice.Connection,
        "data_received",
        aiortc_patches._state.original_data_received,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"", ("127.0.0.1", seller.server_candidate_ports()[0]))
    await call.progress.wait_for(
        lambda: call.bridge.leg_state("seller") == "closed", "the seller's leg to close"
    )


async def test_camera_off_and_on_resumes_on_a_keyframe(call: Call) -> None:
    seller = await call.join("seller")
    buyer = await call.join("buyer")
    await call.progress.wait_for(lambda: len(buyer.received["video"]) >= 10, "buyer video")

    call.bridge.set_media_enabled("seller", "video", False)
    call.bridge.set_media_enabled("seller", "video", False)  # repeated: no new event
    await call.progress.wait_for(
        lambda: call.bridge.stats().stream("seller", "video").frames_muted >= 15,
        "seller video to be held back",
    )
    received_while_off = len(buyer.received["video"])
    sink_while_off = call.sink.counts["seller", "video"]
    requests_before = seller.sources["video"].keyframe_requests
    await call.progress.wait_for(
        lambda: call.bridge.stats().stream("seller", "video").frames_muted >= 30,
        "more seller video to be held back",
    )
    # At most the frame the buyer's jitter buffer was holding came out meanwhile.
    assert len(buyer.received["video"]) <= received_while_off + 1
    assert call.sink.counts["seller", "video"] == sink_while_off
    assert len(buyer.received["audio"]) > 0

    call.bridge.set_media_enabled("seller", "video", True)
    await call.progress.wait_for(
        lambda: len(buyer.received["video"]) >= received_while_off + 10, "video to resume"
    )
    assert seller.sources["video"].keyframe_requests > requests_before
    resumed = buyer.received["video"].frames[received_while_off:]
    assert resumed[0].keyframe or resumed[1].keyframe
    assert call.sink.of("seller", "video")[sink_while_off].keyframe
    assert [(p, k, e) for p, k, e, _at in call.sink.media_states] == [
        ("seller", "video", False),
        ("seller", "video", True),
    ]


async def test_fresh_peer_connection_replaces_a_leg(call: Call) -> None:
    first_seller = await call.join("seller")
    buyer = await call.join("buyer")
    await call.progress.wait_for(lambda: len(buyer.received["video"]) >= 10, "buyer video")
    sink_before = len(call.sink.of("seller", "video"))
    received_before = len(buyer.received["video"])

    # The seller reloads the page: a brand-new peer connection, the old one still up.
    second_seller = await call.join("seller")
    await call.progress.wait_for(
        lambda: (
            len(buyer.received["video"]) >= received_before + 30
            and len(second_seller.received["video"]) >= 10
        ),
        "video both ways through the new leg",
    )
    await call.progress.wait_for(
        lambda: first_seller.pc.connectionState == "closed", "the old client to see its leg close"
    )

    assert call.states_of("buyer") == ["connecting", "connected"]
    assert buyer.states[-1] == "connected"
    assert call.states_of("seller") == ["connecting", "connected", "connecting", "connected"]
    assert call.bridge.stats().legs_started == 3
    new_frames = call.sink.of("seller", "video")[sink_before:]
    second_sent = {data for _pts, data in second_seller.sources["video"].sent}
    first_new = next(i for i, f in enumerate(new_frames) if f.data in second_sent)
    assert new_frames[first_new].keyframe
    # The seller's timeline continues across legs for the recorder.
    timestamps = [f.rtp_timestamp for f in call.sink.of("seller", "video")]
    assert timestamps == sorted(timestamps)
    assert len(set(timestamps)) == len(timestamps)
    assert second_seller.received["video"].frames[0].keyframe


async def test_reconnect_after_the_old_leg_closed(call: Call) -> None:
    first_buyer = await call.join("buyer")
    seller = await call.join("seller")
    await first_buyer.close()
    await call.progress.wait_for(
        lambda: call.bridge.leg_state("buyer") == "closed", "the buyer's leg to close"
    )
    second_buyer = await call.join("buyer")
    await call.progress.wait_for(
        lambda: len(second_buyer.received["video"]) >= 10 and len(seller.received["video"]) >= 10,
        "video both ways",
    )
    assert call.states_of("seller") == ["connecting", "connected"]


async def test_renegotiation_on_the_same_peer_connection(call: Call) -> None:
    seller = await call.join("seller")
    buyer = await call.join("buyer")
    await call.progress.wait_for(lambda: len(buyer.received["video"]) >= 5, "buyer video")
    answer = await call.bridge.accept_offer("seller", await seller.create_offer())
    await seller.accept_answer(answer)
    mark = len(buyer.received["video"])
    await call.progress.wait_for(lambda: len(buyer.received["video"]) >= mark + 15, "video")
    assert call.bridge.stats().legs_started == 2
    assert call.states_of("seller") == ["connecting", "connected"]


async def test_garbage_and_oversized_offers_are_refused(call: Call) -> None:
    bridge = call.bridge
    cases = {
        "sdp_too_large": "v=0\r\n" + "a=x\r\n" * 20000,
        "sdp_invalid": "hello",
    }
    for code, sdp in cases.items():
        with pytest.raises(MediaNegotiationError) as caught:
            await bridge.accept_offer("seller", sdp)
        assert caught.value.code == code

    offer = await call.client().create_offer()
    for code, broken in {
        "sdp_invalid": offer.replace("a=rtpmap:", "a=rtpmap:x", 1),
        "offer_media_sections": offer[: offer.index("m=video")],
        "no_supported_audio_codec": offer.replace("opus/48000", "foo/48000"),
        "no_supported_video_codec": offer.replace("VP8/90000", "VP9/90000"),
    }.items():
        with pytest.raises(MediaNegotiationError) as caught:
            await bridge.accept_offer("seller", broken)
        assert caught.value.code == code, broken
    with pytest.raises(MediaNegotiationError) as caught:
        await bridge.accept_offer("", offer)
    assert caught.value.code == "invalid_participant"
    assert bridge.stats().legs_started == 0


async def test_second_leg_must_use_the_first_legs_video_codec(call: Call) -> None:
    await call.join("seller")
    h264_only = await call.client(video_codec="H264").create_offer()
    with pytest.raises(MediaNegotiationError) as caught:
        await call.bridge.accept_offer("buyer", h264_only)
    assert caught.value.code == "video_codec_mismatch"

    with pytest.raises(MediaNegotiationError) as caught:
        await call.bridge.accept_offer("buyer", await call.client().create_offer())
        await call.bridge.accept_offer("third", await call.client().create_offer())
    assert caught.value.code == "call_full"


async def test_h264_call_when_the_first_browser_offers_no_vp8(call: Call) -> None:
    answer = await call.bridge.accept_offer(
        "seller", await call.client(video_codec="H264").create_offer()
    )
    assert "H264/90000" in answer
    assert "VP8/90000" not in answer
    assert "packetization-mode=1" in answer
    assert call.bridge.video_codec == "H264"
    with pytest.raises(MediaNegotiationError) as caught:
        await call.bridge.accept_offer("buyer", await call.client().create_offer())
    assert caught.value.code == "video_codec_mismatch"


async def test_bad_candidates_are_refused(call: Call) -> None:
    bridge = call.bridge
    with pytest.raises(UnknownParticipantError):
        await bridge.add_remote_candidate(
            "nobody", "candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0
        )
    await call.join("seller")
    for bad in (
        "garbage",
        "candidate:1 1 udp 1 127.0.0.1 99999 typ host",
        "candidate:1 1 sctp 1 127.0.0.1 9 typ host",
        "candidate:1 1 udp 1 not-an-address 9 typ host",
        "candidate:1 1 udp 1 127.0.0.1 9 typ host generation",
        "x" * 5000,
    ):
        with pytest.raises(InvalidCandidateError):
            await bridge.add_remote_candidate("seller", bad, "0", 0)
    with pytest.raises(InvalidCandidateError):
        await bridge.add_remote_candidate(
            "seller", "candidate:1 1 udp 1 127.0.0.1 9 typ host", None, None
        )
    # Well-formed candidates and end-of-candidates are accepted.
    await bridge.add_remote_candidate(
        "seller",
        "candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ srflx"
        " raddr 0.0.0.0 rport 0 generation 0",
        "0",
        0,
    )
    await bridge.add_remote_candidate("seller", "", "0", 0)


async def test_silent_leg_is_reported_disconnected_then_connected(clip: EncodedClip) -> None:
    call = Call(clip, BridgeSettings(liveness_check_interval=0.1, disconnected_after=0.5))
    try:
        seller = await call.join("seller")
        await call.join("buyer")
        # The seller's network drops everything it sends (ICE consent checks aside).
        connection = seller.transceivers["video"].sender.transport.transport._connection
        sent_nothing: list[bytes] = []

        async def drop(data: bytes, component: int) -> None:
            sent_nothing.append(data)

        connection.sendto = drop
        await call.progress.wait_for(
            lambda: call.bridge.leg_state("seller") == "disconnected", "seller disconnected"
        )
        del connection.sendto
        await call.progress.wait_for(
            lambda: call.bridge.leg_state("seller") == "connected", "seller connected again"
        )
        assert call.states_of("seller") == ["connecting", "connected", "disconnected", "connected"]
        assert call.states_of("buyer") == ["connecting", "connected"]
        assert sent_nothing
    finally:
        await call.close()


async def test_aclose_twice_leaves_nothing_running(clip: EncodedClip) -> None:
    call = Call(clip)
    await call.join("seller")
    await call.join("buyer")
    await call.progress.wait_for(lambda: len(call.clients[1].received["video"]) >= 5, "video")

    await asyncio.gather(call.bridge.aclose(), call.bridge.aclose())
    await call.bridge.aclose()
    for client in call.clients:
        await client.close()

    assert call.states_of("seller")[-1] == "closed"
    assert call.states_of("buyer")[-1] == "closed"
    with pytest.raises(MediaNegotiationError) as caught:
        await call.bridge.accept_offer("seller", await call.client().create_offer())
    assert caught.value.code == "bridge_closed"
    await call.clients[-1].close()
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert leftover == []
    assert not [t for t in threading.enumerate() if t.name.endswith("-decoder")]


async def test_closing_while_an_offer_is_answered_leaves_nothing_behind(
    clip: EncodedClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The call ends (hang-up, timer) while the bridge is still answering an offer.
    bridge = CallMediaBridge("race")
    client = MediaClient(clip, Progress())
    answering = asyncio.Event()
    release = asyncio.Event()
    created: list[Any] = []
    original = aiortc.RTCPeerConnection.setLocalDescription

    async def slow_set_local(pc: Any, *args: Any, **kwargs: Any) -> Any:
        created.append(pc)
        answering.set()
        await release.wait()
        return await original(pc, *args, **kwargs)

    try:
        offer_sdp = await client.create_offer()  # before the patch: only the bridge is slow
        monkeypatch.setattr(aiortc.RTCPeerConnection, "setLocalDescription", slow_set_local)
        offer = asyncio.create_task(bridge.accept_offer("seller", offer_sdp))
        await asyncio.wait_for(answering.wait(), 10)
        closing = asyncio.create_task(bridge.aclose())
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(MediaNegotiationError) as raised:
            await offer
        assert raised.value.code == "bridge_closed"
        await closing
        assert [pc.connectionState for pc in created] == ["closed"]
        assert bridge.leg_state("seller") is None
        assert bridge._watchdog is None  # no liveness loop left running
    finally:
        await bridge.aclose()
        await client.close()
