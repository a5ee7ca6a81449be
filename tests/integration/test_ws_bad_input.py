"""Bad input on the call WebSocket and the join link: each gets an error with a code or a
close code, the server stays up, and a call running alongside is untouched.

Limits are patched small where a test needs them (the server reads ``ws_limits`` when a
socket opens); the only fake is the clock of an expired join link.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from itsdangerous import TimestampSigner

from server.appkeys import WS_COUNTERS
from server.calls.join_links import make_join_token
from server.settings import Settings
from server.ws.connection import Connection
from signaling import ws_limits
from signaling.ws_protocol import PingMessage
from tests.support.rtc_client import CallHarness, Participant
from tests.support.ws_client import WsClient

pytestmark = pytest.mark.integration


class Bystanders:
    """A call with media flowing that every test checks is untouched afterwards."""

    def __init__(self, calls: CallHarness, call_id: str, seller: Participant, buyer: Participant):
        self.calls = calls
        self.call_id = call_id
        self.seller = seller
        self.buyer = buyer

    async def still_fine(self) -> None:
        assert self.call_id in self.calls.service.live_call_ids
        for p in (self.seller, self.buyer):
            assert (await p.ws.ok("ping"))["type"] == "pong"
        marks = [len(p.media.received["video"]) for p in (self.seller, self.buyer)]
        await self.calls.progress.wait_for(
            lambda: all(
                len(p.media.received["video"]) >= m + 10
                for p, m in zip((self.seller, self.buyer), marks, strict=True)
            ),
            "the bystanders' video to keep flowing",
        )
        states = [m for p in (self.seller, self.buyer) for m in p.ws.log if m["type"] == "error"]
        assert states == []


@pytest.fixture
async def bystanders(calls: CallHarness) -> AsyncIterator[Bystanders]:
    call_id, seller, buyer = await calls.connected_call("-bystander")
    group = Bystanders(calls, call_id, seller, buyer)
    yield group
    await group.still_fine()


async def a_socket(calls: CallHarness, user_id: str = "mallory") -> WsClient:
    await calls.host.user(user_id, "buyer", vid=True)
    return await calls.socket(user_id)


# --- the handshake -----------------------------------------------------------------------


async def test_refused_before_the_upgrade(calls: CallHarness, bystanders: Bystanders) -> None:
    client = await calls.client(bystanders.seller.ws.user_id)
    url = "/api/v1/ws"
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await client.ws_connect(url, headers={"Origin": "https://evil.example"})
    assert caught.value.status == 403
    plain = await client.get(url)
    assert plain.status == 400
    assert (await plain.json())["error"]["code"] == "websocket_required"

    stranger = aiohttp.ClientSession()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await stranger.ws_connect(client.make_url(url))
        assert caught.value.status == 401
    finally:
        await stranger.close()


async def test_too_many_sockets_for_one_person(
    calls: CallHarness, bystanders: Bystanders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_limits, "MAX_CONNECTIONS_PER_USER", 2)
    first = await a_socket(calls)
    second = await calls.socket("mallory")
    client = await calls.client("mallory")
    third = await client.ws_connect(
        "/api/v1/ws", headers={"Origin": str(client.make_url("/"))[:-1]}
    )
    frame = await third.receive(timeout=5)
    assert frame.type is aiohttp.WSMsgType.CLOSE
    assert third.close_code == 4003
    for ws in (first, second):
        assert (await ws.ok("ping"))["type"] == "pong"
        await ws.close()


# --- frames ------------------------------------------------------------------------------


async def test_malformed_unknown_and_binary_frames_get_error_replies(
    calls: CallHarness, bystanders: Bystanders
) -> None:
    ws = await a_socket(calls)
    cases = [
        ('{"type": "ping", "id": 1', "invalid_json", None),
        ("[1, 2, 3]", "invalid_message", None),
        ('{"id": 2}', "invalid_message", 2),
        ('{"type": 5, "id": 3}', "invalid_message", 3),
        ('{"type": "teleport", "id": 4}', "unknown_type", 4),
        ('{"type": "hang_up", "id": 5, "call_id": "has space"}', "invalid_message", 5),
        ('{"type": "ping", "id": 6, "extra": true}', "invalid_message", 6),
        ('{"type": "start_call", "id": 7, "thread_id": "t"}', "invalid_message", 7),
    ]
    for text, code, request_id in cases:
        await ws.send_raw(text)
        error = await ws.wait_for("error")
        assert (error["error"]["code"], error["id"]) == (code, request_id), text
    await ws.ws.send_bytes(b"\x00\x01binary")
    assert (await ws.wait_for("error"))["error"]["code"] == "invalid_message"
    assert (await ws.ok("ping"))["type"] == "pong"


async def test_oversized_frames(calls: CallHarness, bystanders: Bystanders) -> None:
    ws = await a_socket(calls)
    too_large = json.dumps(
        {"type": "chat", "id": 9, "call_id": "c", "text": "x" * (ws_limits.MAX_FRAME_BYTES + 10)}
    )
    await ws.send_raw(too_large)
    error = await ws.wait_for("error")
    assert (error["error"]["code"], error["id"]) == ("message_too_large", 9)
    assert (await ws.ok("ping"))["type"] == "pong"
    await ws.send_raw("x" * (ws_limits.TRANSPORT_MAX_FRAME_BYTES + 1))
    assert await ws.wait_closed() == 1009


async def test_message_floods_are_limited_then_closed(
    calls: CallHarness, bystanders: Bystanders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_limits, "RATE_LIMIT_BURST", 5)
    monkeypatch.setattr(ws_limits, "RATE_LIMIT_PER_SECOND", 0.5)
    monkeypatch.setattr(ws_limits, "RATE_LIMIT_STRIKES_BEFORE_CLOSE", 20)
    ws = await a_socket(calls)
    counters = calls.app[WS_COUNTERS]  # what the inboxcall_ws_rate_limit* metrics read
    for i in range(1, 11):
        await ws.send("ping", id=i)
    replies = [await ws.wait_for(None, lambda m, i=i: m.get("id") == i) for i in range(1, 11)]
    assert [r["type"] for r in replies] == ["pong"] * 5 + ["error"] * 5
    assert {r["error"]["code"] for r in replies[5:]} == {"rate_limited"}
    assert (counters.rate_limited_messages, counters.rate_limit_closes) == (5, 0)
    for i in range(11, 40):
        await ws.send("ping", id=i)
    assert await ws.wait_closed() == 1008
    assert counters.rate_limit_closes == 1


async def test_a_client_that_cannot_keep_up_is_dropped(
    calls: CallHarness, bystanders: Bystanders, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A burst bigger than the outbound queue, produced before the writer can send any.
    monkeypatch.setattr(ws_limits, "OUTBOUND_QUEUE_MAX", 4)
    host = calls.host
    await host.user("busy-seller", "seller", business_program="member")
    await host.user("busy-buyer", "buyer", vid=True)
    threads = [f"busy-{i}" for i in range(8)]
    for thread_id in threads:
        await host.user(f"other-{thread_id}", "seller", business_program="member")
        await host.thread(thread_id, f"other-{thread_id}", "busy-buyer")
    ws = await calls.socket("busy-buyer")
    counters = calls.app[WS_COUNTERS]  # what inboxcall_ws_slow_consumer_closes_total reads
    assert counters.slow_consumer_closes == 0
    await ws.send("subscribe_presence", id=1, thread_ids=threads)
    assert await ws.wait_closed() == 4002
    assert counters.slow_consumer_closes == 1


async def test_the_outbound_queue_drops_a_client_that_stays_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The time bound: above the peak for too long closes with 4002 (a stalled reader)."""
    monkeypatch.setattr(ws_limits, "OUTBOUND_QUEUE_PEAK", 3)
    monkeypatch.setattr(ws_limits, "OUTBOUND_QUEUE_PEAK_SECONDS", 0.2)

    class StalledSocket:
        """The client's side of a socket whose reader stopped reading."""

        closed = False
        close_codes: list[int] = []

        def __init__(self) -> None:
            self.unblock = asyncio.Event()
            self.closed_event = asyncio.Event()

        async def send_str(self, text: str) -> None:
            await self.unblock.wait()

        async def receive(self) -> Any:
            await self.closed_event.wait()
            return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None)

        async def close(self, *, code: int, message: bytes, drain: bool) -> bool:
            self.close_codes.append(code)
            self.closed = True
            self.closed_event.set()
            return True

    stalled = StalledSocket()
    aborted: list[bool] = []
    conn = Connection(
        stalled,  # type: ignore[arg-type]
        connection_id="ws-test",
        user_id="u",
        base_url="http://127.0.0.1",
        abort=lambda: aborted.append(True),
    )
    conn.start()
    for _ in range(5):
        assert conn.send(PingMessage())
    assert conn.is_open
    assert await asyncio.wait_for(conn.receive(), 2) is None  # the close interrupts reading
    assert conn.close_code == 4002
    await conn.finish()
    assert stalled.close_codes == [4002]
    assert not conn.send(PingMessage())


# --- SDP, candidates, strangers ----------------------------------------------------------


async def test_garbage_and_oversized_sdp(calls: CallHarness, bystanders: Bystanders) -> None:
    call_id, _seller, buyer = await calls.connected_call("-sdp")
    assert (await buyer.ws.error("offer", "sdp_invalid", call_id=call_id, sdp="hello"))["message"]
    garbage = "v=0\r\n" + "a=x\r\n" * 5000
    await buyer.ws.error("offer", "sdp_invalid", call_id=call_id, sdp=garbage)
    await buyer.ws.error(
        "offer", "invalid_message", call_id=call_id, sdp="v" * (ws_limits.MAX_SDP_CHARS + 1)
    )
    await buyer.ws.error(
        "ice_candidate",
        "invalid_message",
        call_id=call_id,
        candidate="candidate:garbage",
        sdp_mid="0",
    )
    # The call is unharmed by its own participant's garbage.
    assert call_id in calls.service.live_call_ids
    assert (await buyer.ws.ok("media_state", call_id=call_id, audio=True, video=True))["type"]


async def test_strangers_learn_nothing_and_change_nothing(
    calls: CallHarness, bystanders: Bystanders
) -> None:
    target = bystanders.call_id
    mallory = await a_socket(calls)
    for type, fields in [
        ("accept_call", {"recording_notice_accepted": True}),
        ("decline_call", {}),
        ("cancel_call", {}),
        ("hang_up", {}),
        ("offer", {"sdp": "v=0\r\n"}),
        (
            "ice_candidate",
            {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdp_mid": "0"},
        ),
        ("media_state", {"audio": False, "video": False}),
        ("chat", {"text": "hi"}),
        ("report_call", {"reason": "other"}),
    ]:
        error = await mallory.error(type, "not_found", call_id=target, **fields)
        assert error["message"] == "no such call", type
    for unknown in ("no-such-call", "x" * 128):
        await mallory.error("hang_up", "not_found", call_id=unknown)
    await mallory.error(
        "start_call", "not_found", thread_id="thread-bystander", recording_notice_accepted=True
    )
    # A participant of one call sending candidates for another call.
    call_id, seller, _buyer = await calls.connected_call("-other")
    await seller.ws.error(
        "ice_candidate",
        "not_found",
        call_id=target,
        candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host",
        sdp_mid="0",
    )
    assert call_id in calls.service.live_call_ids


async def test_wrong_people_and_wrong_phases(calls: CallHarness, bystanders: Bystanders) -> None:
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair("-x")
    seller = await calls.participant(seller_id)
    buyer = await calls.participant(buyer_id)
    # A buyer cannot start a call; a seller cannot accept their own.
    error = await buyer.ws.error(
        "start_call", "ineligible", thread_id=thread_id, recording_notice_accepted=True
    )
    assert [r["code"] for r in error["reasons"]] == ["caller_not_seller"]
    call_id = await calls.ring(seller, buyer, thread_id)
    await seller.ws.error(
        "accept_call", "not_allowed", call_id=call_id, recording_notice_accepted=True
    )
    await buyer.ws.error("offer", "not_allowed", call_id=call_id, sdp="v=0\r\n")
    await buyer.ws.error("chat", "not_allowed", call_id=call_id, text="hello?")
    await seller.ws.ok("cancel_call", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    await seller.ws.error("chat", "call_not_live", call_id=call_id, text="hello?")


# --- the join link -----------------------------------------------------------------------


async def test_bad_join_links(
    calls: CallHarness,
    bystanders: Bystanders,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair("-link")
    seller = await calls.participant(seller_id)
    started = await seller.ws.ok("start_call", thread_id=thread_id, recording_notice_accepted=True)
    call_id = started["call_id"]
    token = started["join_url"].split("token=")[1]
    buyer = await calls.client(buyer_id)
    api = f"/api/v1/calls/{call_id}"

    async def answer(client: Any, path: str, token: str | None) -> tuple[int, str | None]:
        resp = await client.get(path, params={} if token is None else {"token": token})
        if resp.content_type == "application/json":
            body = await resp.json()
            return resp.status, body.get("error", {}).get("code")
        return resp.status, None

    secret = settings.secret_key.get_secret_value()
    forged = make_join_token(
        "another-secret-key-xxxxxxxxxxxxxxx", call_id=call_id, buyer_id=buyer_id
    )
    other_call = make_join_token(secret, call_id=bystanders.call_id, buyer_id=buyer_id)
    real = time.time
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(real()) - 3600)
    expired = make_join_token(secret, call_id=call_id, buyer_id=buyer_id)
    monkeypatch.undo()

    assert await answer(buyer, api, token) == (200, None)
    assert await answer(buyer, api, token[:-3] + "abc") == (403, "join_link_invalid")
    assert await answer(buyer, api, forged) == (403, "join_link_invalid")
    assert await answer(buyer, api, other_call) == (403, "join_link_invalid")
    assert await answer(buyer, api, "x" * 600) == (422, "validation_error")
    assert await answer(buyer, api, expired) == (410, "join_link_expired")
    # Somebody else holding the buyer's link: the seller, and a stranger.
    seller_client = await calls.client(seller_id)
    assert await answer(seller_client, api, token) == (403, "join_link_invalid")
    await calls.host.user("eve", "buyer", vid=True)
    eve = await calls.client("eve")
    assert await answer(eve, api, token) == (403, "join_link_invalid")
    assert await answer(eve, api, None) == (404, "not_found")
    anonymous = aiohttp.ClientSession()
    try:
        resp = await anonymous.get(buyer.make_url(api), params={"token": token})
        assert resp.status == 401
        page = await anonymous.get(
            buyer.make_url(f"/calls/{call_id}/join"), params={"token": token}, allow_redirects=False
        )
        assert page.status == 302
        assert page.headers["Location"].startswith("/login?next=")
    finally:
        await anonymous.close()
    # The page answers the same statuses, as pages.
    page = f"/calls/{call_id}/join"
    for bad, status in ((forged, 403), (expired, 410)):
        resp = await buyer.get(page, params={"token": bad})
        assert resp.status == status
        assert resp.content_type == "text/html"
    # After the end, the (now expired) link says the call ended.
    await seller.ws.ok("cancel_call", call_id=call_id)
    await calls.ended(call_id, seller.ws)
    resp = await buyer.get(api, params={"token": expired})
    assert resp.status == 200
    assert ((await resp.json())["state"], (await resp.json())["end_reason"]) == (
        "ended",
        "cancelled",
    )


async def test_a_spoofed_host_header_cannot_steer_the_join_link(calls: CallHarness) -> None:
    # Origin and Host both forged alike pass the same-origin check; the join link must
    # still not take its address from them.
    seller_id, _buyer_id, thread_id = await calls.host.eligible_pair("host")
    client = await calls.client(seller_id)
    forged = "evil.example"
    ws = WsClient(
        await client.ws_connect(
            "/api/v1/ws", headers={"Host": forged, "Origin": f"http://{forged}"}
        )
    )
    ws.hello = await ws.wait_for("hello")
    try:
        started = await ws.ok("start_call", thread_id=thread_id, recording_notice_accepted=True)
        assert started["join_url"].startswith(f"/calls/{started['call_id']}/join?token=")
        assert forged not in started["join_url"]
        await ws.ok("cancel_call", call_id=started["call_id"])
        for text in await calls.system_messages(thread_id):
            assert forged not in text
    finally:
        await ws.close()
