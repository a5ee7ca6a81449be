"""``POST /api/v1/calls/{call_id}/leave``: the closing call page's keepalive request ends
the call at once, like the socket's ``hang_up`` it duplicates (whichever arrives first)."""

from __future__ import annotations

import pytest

from tests.support.rtc_client import CallHarness

pytestmark = pytest.mark.integration


async def test_a_closing_page_hangs_up_over_http(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    client = await calls.client(buyer.ws.user_id)
    headers = {"X-CSRF-Token": calls.csrf[buyer.ws.user_id]}
    url = f"/api/v1/calls/{call_id}/leave"

    # Without the session's CSRF token nothing happens.
    refused = await client.post(url, json={"message": "hang_up"})
    assert refused.status == 403
    assert call_id in calls.service.live_call_ids

    resp = await client.post(url, json={"message": "hang_up"}, headers=headers)
    assert resp.status == 200 and await resp.json() == {"done": True}
    ended = await seller.ws.call_state("ended")
    assert (ended["end_reason"], ended["ended_by"]) == ("hung_up", buyer.ws.user_id)
    # The socket's own hang_up (or a second request) finds the call over.
    again = await client.post(url, json={"message": "hang_up"}, headers=headers)
    assert again.status == 200 and await again.json() == {"done": False}

    other_seller, _, _ = await calls.host.eligible_pair("-x")
    stranger = await calls.client(other_seller)
    lost = await stranger.post(
        url, json={"message": "hang_up"}, headers={"X-CSRF-Token": calls.csrf[other_seller]}
    )
    assert lost.status == 404
    bad = await client.post(url, json={"message": "explode"}, headers=headers)
    assert bad.status == 422
