"""Join links are bound to one call and one buyer and may be opened again; what must
happen once — the buyer's accept — happens once however many sockets race for it."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.rtc_client import CallHarness

pytestmark = pytest.mark.integration

RACERS = 6


async def test_concurrent_accepts_of_one_call_accept_it_once(calls: CallHarness) -> None:
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair("-race")
    seller = await calls.participant(seller_id)
    buyer = await calls.participant(buyer_id)
    started = await seller.ws.ok("start_call", thread_id=thread_id, recording_notice_accepted=True)
    call_id = started["call_id"]
    join_path = started["join_url"][started["join_url"].index("/calls/") :]
    tabs = [buyer.ws] + [await calls.socket(buyer_id) for _ in range(RACERS - 1)]
    for tab in tabs:
        await tab.wait_for("incoming_call", lambda m: m["call_id"] == call_id)

    replies = await asyncio.gather(
        *(t.request("accept_call", call_id=call_id, recording_notice_accepted=True) for t in tabs)
    )

    accepted = [r for r in replies if r["type"] == "ack"]
    assert len(accepted) == 1, replies
    assert all(r["type"] == "error" for r in replies if r["type"] != "ack")
    await seller.ws.call_state("connecting")
    assert (await calls.call_row(call_id)).state == "connecting"
    # The link itself still reads the call's state (it is not a one-time token).
    client = await calls.client(buyer_id)
    views = await asyncio.gather(*(client.get(join_path) for _ in range(3)))
    assert [v.status for v in views] == [200, 200, 200]
    await seller.ws.ok("hang_up", call_id=call_id)
