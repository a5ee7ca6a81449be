"""``peer_connection_state``: the other participant hears when someone's socket closes or
their media stops, and when they are back (DESIGN.md section 8, WebSocket additions)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.rtc_client import CallHarness

pytestmark = pytest.mark.integration

SOCKET_NOTICE_S = 3.0
MEDIA_NOTICE_S = 5.0


async def test_a_closed_socket_is_told_to_the_other_person_and_so_is_the_return(
    calls: CallHarness,
) -> None:
    call_id, seller, buyer = await calls.connected_call()
    loop = asyncio.get_running_loop()
    closed_at = loop.time()
    await buyer.ws.close()
    lost = await seller.ws.wait_for("peer_connection_state", timeout=SOCKET_NOTICE_S)
    assert loop.time() - closed_at <= SOCKET_NOTICE_S
    assert lost == {
        "type": "peer_connection_state",
        "call_id": call_id,
        "user_id": buyer.ws.user_id,
        "state": "reconnecting",
    }
    # The buyer is back on a new socket: the seller hears it, and the buyer's new socket
    # learns the call is still on.
    back_ws = await calls.socket(buyer.ws.user_id)
    back = await seller.ws.wait_for("peer_connection_state", timeout=SOCKET_NOTICE_S)
    assert (back["user_id"], back["state"]) == (buyer.ws.user_id, "connected")
    state = await back_ws.wait_for("call_state")
    assert state["state"] == "active"
    assert call_id in calls.service.live_call_ids


async def test_stopped_media_is_told_within_five_seconds(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    await buyer.media.close()
    lost = await seller.ws.wait_for(
        "peer_connection_state", lambda m: m["state"] == "reconnecting", timeout=MEDIA_NOTICE_S
    )
    assert loop.time() - stopped_at <= MEDIA_NOTICE_S
    assert lost["user_id"] == buyer.ws.user_id
    # Media from a fresh peer connection brings them back.
    await buyer.connect_media(call_id)
    back = await seller.ws.wait_for(
        "peer_connection_state", lambda m: m["state"] == "connected", timeout=10
    )
    assert back["user_id"] == buyer.ws.user_id


async def test_nobody_hears_of_a_seller_whose_socket_drops_while_it_rings(
    calls: CallHarness,
) -> None:
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair()
    seller = await calls.participant(seller_id)
    buyer = await calls.participant(buyer_id)
    await calls.ring(seller, buyer, thread_id)
    await seller.ws.close()
    # The buyer has not joined: there is nobody in the call to tell.
    await buyer.ws.ok("ping")
    await asyncio.sleep(0.5)
    assert "peer_connection_state" not in buyer.ws.types()
