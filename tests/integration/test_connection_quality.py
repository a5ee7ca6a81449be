"""``connection_quality``: a participant's own signal bars reach the other participant as
``peer_connection_quality``; nobody else may send it, and not once the call is over."""

from __future__ import annotations

import pytest

from tests.support.rtc_client import CallHarness

pytestmark = pytest.mark.integration


async def test_quality_is_relayed_to_the_other_participant_only(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    await buyer.ws.ok("connection_quality", call_id=call_id, level="fair")
    relayed = await seller.ws.wait_for("peer_connection_quality")
    assert relayed == {
        "type": "peer_connection_quality",
        "call_id": call_id,
        "user_id": buyer.ws.user_id,
        "level": "fair",
    }
    await seller.ws.ok("connection_quality", call_id=call_id, level="good")
    back = await buyer.ws.wait_for("peer_connection_quality")
    assert (back["user_id"], back["level"]) == (seller.ws.user_id, "good")
    assert not [
        m
        for m in buyer.ws.log
        if m["type"] == "peer_connection_quality" and m["user_id"] == buyer.ws.user_id
    ]

    # A stranger learns nothing about the call; a bad level is refused by the vocabulary.
    other_seller, _, _ = await calls.host.eligible_pair("-x")
    stranger = await calls.socket(other_seller)
    await stranger.error("connection_quality", "not_found", call_id=call_id, level="poor")
    await buyer.ws.error("connection_quality", "invalid_message", call_id=call_id, level="great")

    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    await buyer.ws.error("connection_quality", "call_not_live", call_id=call_id, level="good")
