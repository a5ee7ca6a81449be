"""A whole call through the real server: two in-process aiortc peers as seller and buyer.

Start over the WebSocket, ring, join, media both ways (counted, in order), camera off and
on, chat with a contact-details hit, hang up — and no encoder or decoder anywhere.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
from sqlalchemy import select

from server.db.models import Message
from tests.support.encoded_media import EncodedClip
from tests.support.media_peers import MediaClient
from tests.support.rtc_client import (
    CallHarness,
    CodecSpy,
    assert_in_order_slice,
    assert_in_order_subsequence,
)

pytestmark = pytest.mark.integration

# A receiver's jitter buffer holds back the latest frame (video) or four (audio).
JITTER_LAG = {"video": 1, "audio": 4}


def sent(peer: MediaClient, kind: str) -> list[bytes]:
    return [data for _pts, data in peer.sources[kind].sent]


def got(peer: MediaClient, kind: str) -> list[bytes]:
    return [f.data for f in peer.received[kind].frames]


async def test_a_whole_call_relays_encoded_media_and_records_what_happened(
    calls: CallHarness, clip: EncodedClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = CodecSpy(monkeypatch)
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair()
    seller = await calls.participant(seller_id)
    buyer = await calls.participant(buyer_id)

    # Start -> ring: the seller's own leg may connect while it rings.
    started = await seller.ws.ok("start_call", thread_id=thread_id, recording_notice_accepted=True)
    call_id = started["call_id"]
    assert started["type"] == "call_started"
    assert f"/calls/{call_id}/join?token=" in started["join_url"]
    incoming = await buyer.ws.wait_for("incoming_call")
    assert incoming["call_id"] == call_id
    assert incoming["caller"] == {"id": seller_id, "display_name": seller_id}
    assert incoming["join_url"] == started["join_url"]
    seller_peer = await seller.connect_media(call_id)
    await seller_peer.wait_connected()

    # Join.
    assert (await buyer.ws.ok("accept_call", call_id=call_id, recording_notice_accepted=True))[
        "type"
    ] == "ack"
    for p in (seller, buyer):
        await p.ws.call_state("connecting")
    buyer_peer = await buyer.connect_media(call_id)
    for p in (seller, buyer):
        await p.ws.call_state("active", timeout=15)

    # Media both ways, counted and in order.
    await calls.progress.wait_for(
        lambda: (
            all(len(p.received["video"]) >= 45 for p in (seller_peer, buyer_peer))
            and all(len(p.received["audio"]) >= 75 for p in (seller_peer, buyer_peer))
        ),
        "1.5 s of video and audio each way",
    )
    for source, sink in ((seller_peer, buyer_peer), (buyer_peer, seller_peer)):
        for kind in ("video", "audio"):
            assert_in_order_slice(got(sink, kind), sent(source, kind))
            stamps = [f.timestamp for f in sink.received[kind].frames]
            assert stamps == sorted(set(stamps))
        assert sink.received["video"].frames[0].keyframe
        assert sink.received["video"].codecs == {"VP8"}
        assert sink.received["audio"].codecs == {"opus"}

    # Camera off: the buyer is told, and the seller's video stops reaching them.
    await seller.ws.ok("media_state", call_id=call_id, audio=True, video=False)
    peer_state = await buyer.ws.wait_for("peer_media_state")
    assert peer_state == {
        "type": "peer_media_state",
        "call_id": call_id,
        "user_id": seller_id,
        "audio": True,
        "video": False,
    }
    bridge = calls.local_media(call_id).bridge
    await calls.progress.wait_for(
        lambda: bridge.stats().stream(seller_id, "video").frames_muted >= 1, "video held back"
    )
    video_while_off = len(buyer_peer.received["video"])
    audio_while_off = len(buyer_peer.received["audio"])
    await calls.progress.wait_for(
        lambda: (
            bridge.stats().stream(seller_id, "video").frames_muted >= 20
            and len(buyer_peer.received["audio"]) >= audio_while_off + 25
        ),
        "20 held-back frames while audio flows on",
    )
    # At most the frame the buyer's jitter buffer was holding came out meanwhile.
    assert len(buyer_peer.received["video"]) <= video_while_off + JITTER_LAG["video"]

    # Camera on: video resumes, on a keyframe.
    await seller.ws.ok("media_state", call_id=call_id, audio=True, video=True)
    assert (await buyer.ws.wait_for("peer_media_state"))["video"] is True
    await calls.progress.wait_for(
        lambda: len(buyer_peer.received["video"]) >= video_while_off + 15, "video to resume"
    )
    resumed = buyer_peer.received["video"].frames[video_while_off + JITTER_LAG["video"] :]
    assert resumed[0].keyframe
    assert_in_order_subsequence(got(buyer_peer, "video"), sent(seller_peer, "video"))

    # Chat with a contact-details hit: both get it, the sender is warned, the call marked.
    reply = await buyer.ws.ok("chat", call_id=call_id, text="call me at +1 415 555 0134")
    assert reply["type"] == "chat"
    assert reply["message"]["flags"] == ["contact_details"]
    warning = await buyer.ws.wait_for("contact_details_warning")
    assert warning["message_id"] == reply["message"]["id"]
    relayed = await seller.ws.wait_for("chat")
    assert relayed["id"] is None
    assert relayed["message"] == reply["message"]
    clean = await seller.ws.ok("chat", call_id=call_id, text="Let's keep it here, thanks")
    assert clean["message"]["flags"] == []
    assert not [m for m in seller.ws.pending if m["type"] == "contact_details_warning"]

    # Hang up.
    assert (await seller.ws.ok("hang_up", call_id=call_id))["type"] == "ack"
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    for p in (seller, buyer):
        ended = [m for m in p.ws.log if m["type"] == "call_state" and m["state"] == "ended"]
        assert ended == [
            {
                "type": "call_state",
                "call_id": call_id,
                "state": "ended",
                "end_reason": "hung_up",
                "ended_by": seller_id,
                "detail": None,
            }
        ]
    assert spy.calls == Counter(), f"codecs were constructed: {spy.calls}"
    spy.prove_it_can_fail()

    # What was stored.
    assert (row.end_reason, row.ended_by, row.end_detail) == ("hung_up", seller_id, None)
    assert row.seller_consent_at is not None and row.buyer_consent_at is not None
    assert row.created_at <= row.seller_consent_at <= row.buyer_consent_at
    assert row.connected_at is not None and row.ended_at is not None
    assert row.contact_details_detected is True
    events = await calls.events(call_id)
    kinds = [(kind, user) for kind, user, _data in events]
    assert kinds == [
        ("joined", seller_id),
        ("joined", buyer_id),
        ("camera_off", seller_id),
        ("camera_on", seller_id),
        ("chat", buyer_id),
        ("chat", seller_id),
        ("left", seller_id),
        ("left", buyer_id),
    ]
    assert events[4][2] == {"detail": reply["message"]["id"], "flags": ["contact_details"]}
    async with calls.db() as session:
        chats = (
            await session.scalars(
                select(Message).where(Message.call_id == call_id).order_by(Message.created_at)
            )
        ).all()
    assert [(m.kind, m.sender_id, m.flags) for m in chats] == [
        ("call_chat", buyer_id, ["contact_details"]),
        ("call_chat", seller_id, []),
        ("system", None, []),
    ]
    assert chats[-1].text.startswith("Video call ended (0:0")

    # Nothing of the call keeps running: no bridge task, no decoder thread, no timer.
    for peer in (seller_peer, buyer_peer):
        await peer.close()
    leftovers = [
        t.get_name()
        for t in asyncio.all_tasks()
        if not t.done() and t.get_name().startswith(("call-", "media-", "pli-"))
    ]
    assert leftovers == []
    assert not [t for t in threading.enumerate() if t.name.endswith("-decoder")]
