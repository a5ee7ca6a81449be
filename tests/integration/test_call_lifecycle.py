"""How calls end, come back and are refused, through the real server and real peers.

Each end reason is driven the way it happens in use; after each, both people heard it, the
row and events are stored, and nothing of the call keeps running. Timeouts are made small
through settings (``indirect`` parametrisation of the ``settings`` fixture).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aioice.stun
import pytest
from aiohttp import web
from sqlalchemy import select

from recorder import FinalisedRecording
from server.app import create_app
from server.appkeys import CALL_ENDED_HOOKS, RECORDING_SINK_FACTORY
from server.db.models import Call, Thread
from server.db.session import make_engine, make_session_factory
from server.settings import Settings
from signaling import aiortc_patches
from signaling.call_state import FailureDetail
from signaling.media_bridge import CallMediaBridge
from signaling.media_sink import EncodedFrame, MediaKind
from tests.support.media_peers import MediaClient
from tests.support.rtc_client import CallHarness, Participant
from tests.support.service import AUTH, make_settings
from tests.support.ws_client import WsClient

pytestmark = pytest.mark.integration


class RecordingSpy:
    """The recording seam as the recorder uses it: a sink per call, a hook at the end."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}
        self.closed: list[str] = []
        self.ended: list[str] = []

    def factory(self, call_id: str) -> RecordingSpy.Sink:
        self.frames[call_id] = 0
        return RecordingSpy.Sink(self, call_id)

    async def hook(self, call_id: str, recordings: Sequence[FinalisedRecording]) -> None:
        # A call is recorded from the moment it is active: one that never was has no sink.
        if call_id in self.frames:
            assert call_id in self.closed, "the hook ran before the sink was closed"
        self.ended.append(call_id)

    class Sink:
        def __init__(self, spy: RecordingSpy, call_id: str) -> None:
            self.spy = spy
            self.call_id = call_id

        def on_frame(self, frame: EncodedFrame) -> None:
            self.spy.frames[self.call_id] += 1

        def on_media_state(
            self, participant_id: str, kind: MediaKind, enabled: bool, at: float
        ) -> None:
            pass

        async def aclose(self) -> None:
            self.spy.closed.append(self.call_id)


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    overrides: dict[str, Any] = {"ring_timeout_seconds": 10.0, "reconnect_grace_seconds": 10.0}
    overrides.update(getattr(request, "param", {}))
    return make_settings(tmp_path, **overrides)


@pytest.fixture
def recording() -> RecordingSpy:
    return RecordingSpy()


@pytest.fixture
def app(settings: Settings, recording: RecordingSpy) -> web.Application:
    app = create_app(settings)

    async def recording_spy_ctx(app: web.Application) -> AsyncIterator[None]:
        # Started after the recorder's own context: the spy takes the seam's place.
        app[RECORDING_SINK_FACTORY] = recording.factory
        app[CALL_ENDED_HOOKS].append(recording.hook)
        yield

    app.cleanup_ctx.append(recording_spy_ctx)
    return app


def small(**values: float) -> Any:
    return pytest.mark.parametrize("settings", [values], indirect=True)


async def ringing(
    calls: CallHarness, suffix: str = ""
) -> tuple[str, str, Participant, Participant]:
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair(suffix)
    seller = await calls.participant(seller_id)
    buyer = await calls.participant(buyer_id)
    return await calls.ring(seller, buyer, thread_id), thread_id, seller, buyer


async def accepted(
    calls: CallHarness, suffix: str = ""
) -> tuple[str, str, Participant, Participant]:
    call_id, thread_id, seller, buyer = await ringing(calls, suffix)
    await buyer.ws.ok("accept_call", call_id=call_id, recording_notice_accepted=True)
    await seller.ws.call_state("connecting")
    return call_id, thread_id, seller, buyer


def bridge_of(calls: CallHarness, call_id: str) -> CallMediaBridge:
    return calls.local_media(call_id).bridge


def assert_nothing_running(bridge: CallMediaBridge, *user_ids: str) -> None:
    for user_id in user_ids:
        assert bridge.leg_state(user_id) in (None, "closed")
    leftovers = [
        t.get_name()
        for t in asyncio.all_tasks()
        if not t.done() and t.get_name().startswith(("call-", "media-", "pli-"))
    ]
    assert leftovers == []


def ended_message(ws: WsClient) -> dict[str, Any]:
    ended = [m for m in ws.log if m["type"] == "call_state" and m["state"] == "ended"]
    assert len(ended) == 1, ended
    return ended[0]


# --- hung up, declined, cancelled, missed -----------------------------------------------


async def test_buyer_hangs_up_an_active_call(calls: CallHarness, recording: RecordingSpy) -> None:
    call_id, seller, buyer = await calls.connected_call()
    bridge = bridge_of(calls, call_id)
    await buyer.ws.ok("hang_up", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.ended_by) == ("hung_up", buyer.ws.user_id)
    assert ended_message(seller.ws)["ended_by"] == buyer.ws.user_id
    assert_nothing_running(bridge, seller.ws.user_id, buyer.ws.user_id)
    kinds = [(k, u) for k, u, _ in await calls.events(call_id)]
    assert kinds[-2:] == [("left", buyer.ws.user_id), ("left", seller.ws.user_id)]
    # The recording seam: frames went to the sink, closed before the hook ran, once.
    assert recording.frames[call_id] > 0
    assert recording.closed == [call_id]
    assert recording.ended == [call_id]
    # Hanging up again: the call is over.
    await seller.ws.error("hang_up", "call_not_live", call_id=call_id)


async def test_seller_hangs_up_while_connecting(calls: CallHarness) -> None:
    call_id, thread_id, seller, buyer = await accepted(calls)
    await seller.ws.ok("hang_up", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.ended_by) == ("hung_up", seller.ws.user_id)
    assert await calls.system_messages(thread_id) == ["Video call ended (0:00)"]


async def test_declined_call_leaves_a_system_message(calls: CallHarness) -> None:
    call_id, thread_id, seller, buyer = await ringing(calls)
    await seller.ws.error("hang_up", "not_allowed", call_id=call_id)  # ringing: cancel instead
    await buyer.ws.error("cancel_call", "not_allowed", call_id=call_id)
    await buyer.ws.ok("decline_call", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.ended_by) == ("declined", buyer.ws.user_id)
    assert row.buyer_consent_at is None
    assert await calls.system_messages(thread_id) == ["Call declined"]
    assert [k for k, _, _ in await calls.events(call_id)] == ["joined", "left"]


async def test_cancelled_call(calls: CallHarness) -> None:
    call_id, thread_id, seller, buyer = await ringing(calls)
    await seller.ws.ok("cancel_call", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.ended_by) == ("cancelled", seller.ws.user_id)
    assert await calls.system_messages(thread_id) == ["Call cancelled"]


@small(ring_timeout_seconds=0.5)
async def test_unanswered_call_is_missed(calls: CallHarness) -> None:
    call_id, thread_id, seller, buyer = await ringing(calls)
    # A tab the buyer opens while it rings rings too, and stops ringing with the others.
    other_tab = await calls.socket(buyer.ws.user_id)
    assert (await other_tab.wait_for("incoming_call"))["call_id"] == call_id
    await seller.connect_media(call_id)  # the seller's leg may be up while it rings
    row = await calls.ended(call_id, seller.ws, buyer.ws, other_tab)
    assert (row.end_reason, row.ended_by) == ("missed", None)
    assert await calls.system_messages(thread_id) == ["Missed video call"]
    await other_tab.close()
    await buyer.ws.error(
        "accept_call", "call_not_live", call_id=call_id, recording_notice_accepted=True
    )


# --- failed ------------------------------------------------------------------------------


async def test_ice_failure_fails_the_call(
    calls: CallHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Connectivity checks give up after one quick retry instead of about 40 s.
    monkeypatch.setattr(aioice.stun, "RETRY_MAX", 1)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.05)
    call_id, _thread_id, seller, buyer = await accepted(calls)
    bridge = bridge_of(calls, call_id)
    # The buyer's browser offers, then vanishes before answering a single check.
    peer = MediaClient(calls.clip, calls.progress)
    offer = await peer.create_offer()
    await peer.close()
    await buyer.ws.ok("offer", call_id=call_id, sdp=offer)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.ended_by, row.end_detail) == (
        "failed",
        buyer.ws.user_id,
        "ice_failed",
    )
    assert_nothing_running(bridge, seller.ws.user_id, buyer.ws.user_id)


@small(connect_timeout_seconds=0.5)
async def test_media_that_never_connects_fails_the_call(calls: CallHarness) -> None:
    call_id, _thread_id, seller, buyer = await accepted(calls)  # nobody sends an offer
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.ended_by, row.end_detail) == ("failed", None, "connect_timeout")


@small(reconnect_grace_seconds=0.5)
async def test_participant_lost_beyond_the_grace_period(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    bridge = bridge_of(calls, call_id)
    await buyer.close()  # the tab is gone: socket and media
    row = await calls.ended(call_id, seller.ws)
    assert (row.end_reason, row.ended_by, row.end_detail) == (
        "failed",
        buyer.ws.user_id,
        "participant_lost",
    )
    kinds = [(k, u) for k, u, _ in await calls.events(call_id)]
    assert kinds[-3:] == [
        ("reconnecting", buyer.ws.user_id),
        ("left", buyer.ws.user_id),
        ("left", seller.ws.user_id),
    ]
    assert_nothing_running(bridge, seller.ws.user_id, buyer.ws.user_id)


# --- reconnecting ------------------------------------------------------------------------


async def test_a_new_socket_reattaches_and_a_new_offer_replaces_the_leg(
    calls: CallHarness,
) -> None:
    call_id, seller, buyer = await calls.connected_call()
    buyer_id = buyer.ws.user_id
    thread_id = (await calls.call_row(call_id)).thread_id
    await seller.ws.ok("subscribe_presence", thread_ids=[thread_id])
    assert (await seller.ws.wait_for("presence"))["online"] is True

    # The buyer's socket drops; the server notices (presence says so), the call goes on.
    await buyer.ws.close()
    assert (await seller.ws.wait_for("presence"))["online"] is False
    new_ws = await calls.socket(buyer_id)
    state = await new_ws.wait_for("call_state")
    assert (state["call_id"], state["state"]) == (call_id, "active")
    assert (await seller.ws.wait_for("presence"))["online"] is True

    # A fresh peer connection from the new socket replaces the media leg.
    buyer.ws = new_ws
    old_peer = buyer.media
    new_peer = await buyer.connect_media(call_id)
    mark = len(seller.media.received["video"])
    await calls.progress.wait_for(
        lambda: (
            len(new_peer.received["video"]) >= 10
            and len(seller.media.received["video"]) >= mark + 10
        ),
        "video both ways through the new leg",
    )
    await calls.progress.wait_for(
        lambda: old_peer.pc.connectionState == "closed", "the old leg to be closed"
    )
    await buyer.ws.ok("hang_up", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, new_ws)
    assert row.end_reason == "hung_up"
    kinds = [(k, d.get("detail")) for k, u, d in await calls.events(call_id) if u == buyer_id]
    assert ("reconnecting", "ws_closed") in kinds
    assert kinds.index(("reconnecting", "ws_closed")) < kinds.index(("reconnected", None))


async def test_a_closed_media_leg_comes_back_with_a_new_offer(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    live = calls.service.live_call(call_id)
    assert live is not None
    await buyer.media.close()
    await calls.progress.wait_for(lambda: live.state.buyer.lost, "the buyer to be lost")
    peer = await buyer.connect_media(call_id)
    await calls.progress.wait_for(
        lambda: len(peer.received["video"]) >= 5, "video to the buyer's new peer"
    )
    await seller.ws.ok("hang_up", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert row.end_reason == "hung_up"
    kinds = [(k, d.get("detail")) for k, u, d in await calls.events(call_id)]
    assert ("reconnecting", "media_closed") in kinds
    assert ("reconnected", None) in kinds


# --- ineligible --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("order_placed", "thread_has_order"),
        ("restricted", "account_restricted"),
        ("blocked", "buyer_blocked_seller"),
        ("thread_closed", "thread_not_active"),
    ],
)
async def test_a_call_that_stops_being_eligible_ends(
    calls: CallHarness, change: str, reason: str
) -> None:
    call_id, seller, buyer = await calls.connected_call()
    seller_id, buyer_id = seller.ws.user_id, buyer.ws.user_id
    thread_id = (await calls.call_row(call_id)).thread_id
    bridge = bridge_of(calls, call_id)
    host = calls.host
    match change:
        case "order_placed":
            await host.thread(thread_id, seller_id, buyer_id, order_placed=True)
        case "restricted":
            await host.user(buyer_id, "buyer", vid=True, restricted=True)
        case "blocked":
            resp = await host.client.put(
                f"/api/v1/integration/blocks/{buyer_id}/{seller_id}", headers=AUTH
            )
            assert resp.status == 200
        case "thread_closed":
            await host.thread(thread_id, seller_id, buyer_id, state="closed")
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.ended_by, row.end_detail) == ("ineligible", None, reason)
    assert ended_message(buyer.ws)["detail"] == reason
    assert_nothing_running(bridge, seller_id, buyer_id)


async def test_an_unrelated_change_leaves_the_call_alone(calls: CallHarness) -> None:
    call_id, _thread_id, seller, buyer = await accepted(calls)
    await calls.host.user(seller.ws.user_id, "seller", business_program="member")
    await calls.host.eligible_pair("-other")
    assert call_id in calls.service.live_call_ids
    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)


async def test_eligibility_is_checked_again_when_the_buyer_joins(calls: CallHarness) -> None:
    call_id, thread_id, seller, buyer = await ringing(calls)
    # The order reaches the database without the watch hearing of it (as from another
    # node): only the check at join can catch it.
    async with calls.db() as session, session.begin():
        thread = await session.get(Thread, thread_id)
        assert thread is not None
        thread.order_placed = True
    error = await buyer.ws.error(
        "accept_call", "ineligible", call_id=call_id, recording_notice_accepted=True
    )
    assert [r["code"] for r in error["reasons"]] == ["thread_has_order"]
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.end_detail) == ("ineligible", "thread_has_order")
    assert row.buyer_consent_at is None


# --- one live call per thread and per person --------------------------------------------


async def test_one_live_call_per_thread_and_per_person(calls: CallHarness) -> None:
    call_id, thread_id, seller, buyer = await ringing(calls)
    seller_id, buyer_id = seller.ws.user_id, buyer.ws.user_id
    host = calls.host

    error = await seller.ws.error(
        "start_call", "ineligible", thread_id=thread_id, recording_notice_accepted=True
    )
    assert "call_already_active" in [r["code"] for r in error["reasons"]]
    # The same seller calling another buyer, another seller calling the same buyer.
    await host.user("buyer2", "buyer", vid=True)
    await host.thread("thread-s-b2", seller_id, "buyer2")
    error = await seller.ws.error(
        "start_call", "ineligible", thread_id="thread-s-b2", recording_notice_accepted=True
    )
    assert [r["code"] for r in error["reasons"]] == ["call_already_active"]
    await host.user("seller2", "seller", business_program="member")
    await host.thread("thread-s2-b", "seller2", buyer_id)
    seller2 = await calls.participant("seller2")
    error = await seller2.ws.error(
        "start_call", "ineligible", thread_id="thread-s2-b", recording_notice_accepted=True
    )
    assert [r["code"] for r in error["reasons"]] == ["call_already_active"]

    await seller.ws.ok("cancel_call", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    again = await seller.ws.ok(
        "start_call", thread_id="thread-s-b2", recording_notice_accepted=True
    )
    await seller.ws.ok("cancel_call", call_id=again["call_id"])
    await calls.ended(again["call_id"], seller.ws)


async def test_racing_starts_make_one_call(calls: CallHarness) -> None:
    seller_id, _buyer_id, thread_id = await calls.host.eligible_pair()
    tabs = [await calls.socket(seller_id) for _ in range(4)]
    replies = await asyncio.gather(
        *(
            tab.request("start_call", thread_id=thread_id, recording_notice_accepted=True)
            for tab in tabs
        )
    )
    started = [r for r in replies if r["type"] == "call_started"]
    refused = [r for r in replies if r["type"] == "error"]
    assert len(started) == 1
    assert {r["error"]["code"] for r in refused} == {"ineligible"}
    assert calls.service.live_call_ids == {started[0]["call_id"]}
    for tab in tabs:
        await tab.close()
    async with calls.db() as session:
        live_rows = (await session.scalars(select(Call).where(Call.state != "ended"))).all()
    assert [r.id for r in live_rows] == [started[0]["call_id"]]


# --- join link, offline buyer, consent --------------------------------------------------


async def test_an_offline_buyer_gets_the_join_link_in_the_thread(calls: CallHarness) -> None:
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair()
    seller = await calls.participant(seller_id)
    started = await seller.ws.ok("start_call", thread_id=thread_id, recording_notice_accepted=True)
    call_id = started["call_id"]
    messages = await calls.system_messages(thread_id)
    assert messages == [f"Incoming video call. Join: {started['join_url']}"]

    # The buyer follows the link later: page and JSON twin, then joins over a socket.
    buyer_client = await calls.client(buyer_id)
    path = started["join_url"][started["join_url"].index("/calls/") :]
    page = await buyer_client.get(path)
    assert page.status == 200
    html = await page.text()
    for text in ("This call is recorded and may be reviewed", "Join call", "Decline"):
        assert text in html
    token = path.split("token=")[1]
    info = await buyer_client.get(f"/api/v1/calls/{call_id}", params={"token": token})
    assert info.status == 200
    body = await info.json()
    assert (body["state"], body["thread_id"], body["caller"]["id"]) == (
        "ringing",
        thread_id,
        seller_id,
    )
    buyer = await calls.participant(buyer_id)
    await buyer.ws.error("accept_call", "invalid_message", call_id=call_id)  # no consent
    await buyer.ws.ok("accept_call", call_id=call_id, recording_notice_accepted=True)
    await seller.ws.call_state("connecting")
    await buyer.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    after = await buyer_client.get(f"/api/v1/calls/{call_id}", params={"token": token})
    assert after.status == 200
    assert ((await after.json())["state"], (await after.json())["end_reason"]) == (
        "ended",
        "hung_up",
    )
    page = await buyer_client.get(path)
    assert page.status == 200
    assert "This call has ended." in await page.text()


async def test_an_online_buyer_gets_no_link_message(calls: CallHarness) -> None:
    call_id, thread_id, seller, buyer = await ringing(calls)
    assert await calls.system_messages(thread_id) == []
    await seller.ws.ok("cancel_call", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)


async def test_reports_are_stored_during_and_after_a_call(calls: CallHarness) -> None:
    call_id, _thread_id, seller, buyer = await accepted(calls)
    await buyer.ws.ok(
        "report_call", call_id=call_id, reason="off_platform_contact", details="asked for phone"
    )
    await buyer.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    seller_client = await calls.client(seller.ws.user_id)
    resp = await seller_client.post(
        f"/api/v1/calls/{call_id}/report",
        json={"reason": "harassment"},
        headers={"X-CSRF-Token": calls.csrf[seller.ws.user_id]},
    )
    assert resp.status == 201, await resp.text()
    row = await calls.call_row(call_id)
    assert row.reported is True
    reports = [
        (u, d["reason"], d["details"]) for k, u, d in await calls.events(call_id) if k == "report"
    ]
    assert reports == [
        (buyer.ws.user_id, "off_platform_contact", "asked for phone"),
        (seller.ws.user_id, "harassment", None),
    ]
    await calls.host.user("stranger", "buyer", vid=True)
    stranger_client = await calls.client("stranger")
    resp = await stranger_client.post(
        f"/api/v1/calls/{call_id}/report",
        json={"reason": "other"},
        headers={"X-CSRF-Token": calls.csrf["stranger"]},
    )
    assert resp.status == 404


# --- the media port, shutdown -----------------------------------------------------------


async def test_zero_length_datagrams_do_not_end_a_call(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    ports = seller.media.server_candidate_ports() + buyer.media.server_candidate_ports()
    assert ports
    dropped = aiortc_patches.datagram_drop_counts().empty
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for port in ports:
            for _ in range(3):
                udp.sendto(b"", ("127.0.0.1", port))
    await calls.progress.wait_for(
        lambda: aiortc_patches.datagram_drop_counts().empty >= dropped + 3 * len(ports),
        "the empty datagrams to arrive",
    )
    marks = [len(p.media.received["video"]) for p in (seller, buyer)]
    await calls.progress.wait_for(
        lambda: all(
            len(p.media.received["video"]) >= m + 30
            for p, m in zip((seller, buyer), marks, strict=True)
        ),
        "media to keep flowing",
    )
    assert call_id in calls.service.live_call_ids
    await seller.ws.ok("hang_up", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert row.end_reason == "hung_up"


async def test_server_shutdown_ends_every_live_call(
    calls: CallHarness, settings: Settings, recording: RecordingSpy
) -> None:
    active_id, seller, buyer = await calls.connected_call()
    ringing_id, _thread, seller2, buyer2 = await ringing(calls, "-2")
    bridge = bridge_of(calls, active_id)

    closing = asyncio.ensure_future(calls.server.close())

    async def hears_the_end(p: Participant) -> None:
        state = await p.ws.call_state("ended")
        assert (state["end_reason"], state["ended_by"]) == ("server_shutdown", None)
        assert await p.ws.wait_closed() == 1001

    await asyncio.gather(*(hears_the_end(p) for p in (seller, buyer, seller2, buyer2)))
    await closing
    assert_nothing_running(bridge, seller.ws.user_id, buyer.ws.user_id)
    assert sorted(recording.ended) == sorted([active_id, ringing_id])
    engine = make_engine(settings.resolved_database_url)
    try:
        async with make_session_factory(engine)() as session:
            rows = (await session.scalars(select(Call).order_by(Call.id))).all()
    finally:
        await engine.dispose()
    assert {(r.id, r.state, r.end_reason) for r in rows} == {
        (active_id, "ended", "server_shutdown"),
        (ringing_id, "ended", "server_shutdown"),
    }


@small(ring_timeout_seconds=0.5)
async def test_a_failure_at_the_deadline_is_retried_not_left_ringing(
    calls: CallHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.calls import store

    real = store.add_changes
    failures: list[str] = []

    async def database_hiccup(session: Any, row: Any, state: Any, changes: Any, **kw: Any) -> Any:
        if state.phase.value == "ended" and not failures:
            failures.append(row.id)
            raise OSError("database went away for a moment")
        return await real(session, row, state, changes, **kw)

    monkeypatch.setattr(store, "add_changes", database_hiccup)
    call_id, thread_id, seller, buyer = await ringing(calls)
    row = await calls.ended(call_id, seller.ws, buyer.ws, timeout=15)
    assert failures == [call_id]
    assert row.end_reason == "missed"
    assert await calls.system_messages(thread_id) == ["Missed video call"]


@small(max_call_minutes=0.1)  # 6 s, so the warning comes at half time (3 s before)
async def test_a_call_ends_at_its_maximum_length_after_a_warning(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    for p in (seller, buyer):
        warning = await p.ws.wait_for("call_ending_soon", timeout=10)
        assert warning["call_id"] == call_id
        assert 0 < warning["seconds_left"] <= 3
        assert warning["max_minutes"] == pytest.approx(0.1)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.ended_by, row.end_detail) == ("max_length", None, None)
    assert row.connected_at is not None and row.ended_at is not None
    assert (row.ended_at - row.connected_at).total_seconds() == pytest.approx(6, abs=1)


async def test_video_paused_for_a_weak_link_is_told_to_both(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    bridge = bridge_of(calls, call_id)
    # The bridge's own notice seam (its gate decided the buyer's link is too weak; the
    # decision itself is covered by tests/integration/test_bitrate.py).
    notice = bridge._on_notice
    assert notice is not None
    notice(buyer.ws.user_id, "video_paused")
    for p in (seller, buyer):
        message = await p.ws.wait_for("video_paused")
        assert message == {
            "type": "video_paused",
            "call_id": call_id,
            "user_id": buyer.ws.user_id,
            "paused": True,
            "reason": "weak_connection",
        }
    notice(buyer.ws.user_id, "video_resumed")
    for p in (seller, buyer):
        message = await p.ws.wait_for("video_paused", lambda m: m["paused"] is False)
        assert message["user_id"] == buyer.ws.user_id


async def test_a_leg_over_the_bitrate_ceiling_ends_the_call_for_both(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    bridge = bridge_of(calls, call_id)
    # The bridge's failure seam, as its police calls it (the policing itself is covered by
    # tests/integration/test_bitrate.py with a peer sending 60 KB frames).
    failure = bridge._on_failure
    assert failure is not None
    failure(buyer.ws.user_id, FailureDetail.BITRATE_EXCEEDED)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    assert (row.end_reason, row.end_detail) == ("failed", "bitrate_exceeded")
