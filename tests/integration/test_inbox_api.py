"""The inbox as a signed-in person uses it, and the eligibility endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support.service import AUTH, Host

pytestmark = pytest.mark.integration


async def eligibility(client: TestClient[Any, Any], thread: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/threads/{thread}/call-eligibility")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def test_eligible_thread_and_answer_shape(signed_in: Any, host: Host) -> None:
    seller, _, thread = await host.eligible_pair()
    client, _ = await signed_in(seller)
    assert await eligibility(client, thread) == {"allowed": True, "reasons": []}


async def test_buyer_asking_gets_caller_not_seller(signed_in: Any, host: Host) -> None:
    _, buyer, thread = await host.eligible_pair()
    client, _ = await signed_in(buyer)
    body = await eligibility(client, thread)
    assert body["allowed"] is False
    assert [r["code"] for r in body["reasons"]] == ["caller_not_seller"]
    assert body["reasons"][0]["message"]


async def test_host_changes_are_reflected_in_eligibility(signed_in: Any, host: Host) -> None:
    seller, buyer, thread = await host.eligible_pair()
    client, _ = await signed_in(seller)
    await host.thread(thread, seller, buyer, order_placed=True)
    assert [r["code"] for r in (await eligibility(client, thread))["reasons"]] == [
        "thread_has_order"
    ]
    stale = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    await host.thread(thread, seller, buyer, last_buyer_activity_at=stale)
    assert [r["code"] for r in (await eligibility(client, thread))["reasons"]] == [
        "thread_not_active"
    ]
    await host.thread(thread, seller, buyer)
    await host.user(buyer, "buyer", vid=True, restricted=True)
    assert [r["code"] for r in (await eligibility(client, thread))["reasons"]] == [
        "account_restricted"
    ]
    await host.user(buyer, "buyer", vid=False)
    assert [r["code"] for r in (await eligibility(client, thread))["reasons"]] == ["buyer_not_vid"]
    await host.user(buyer, "buyer", vid=True)
    await host.user(seller, "seller", business_program="suspended")
    codes = [r["code"] for r in (await eligibility(client, thread))["reasons"]]
    assert codes == ["seller_not_in_business_program"]


async def test_buyer_blocks_and_unblocks_seller(signed_in: Any, host: Host) -> None:
    seller, buyer, thread = await host.eligible_pair()
    seller_client, _ = await signed_in(seller)
    buyer_client, csrf = await signed_in(buyer)
    headers = {"X-CSRF-Token": csrf}
    resp = await buyer_client.put(f"/api/v1/threads/{thread}/block", headers=headers)
    assert (await resp.json())["blocked"] is True
    codes = [r["code"] for r in (await eligibility(seller_client, thread))["reasons"]]
    assert codes == ["buyer_blocked_seller"]
    resp = await buyer_client.delete(f"/api/v1/threads/{thread}/block", headers=headers)
    assert (await resp.json())["blocked"] is False
    assert (await eligibility(seller_client, thread))["allowed"] is True


async def test_seller_cannot_block(signed_in: Any, host: Host) -> None:
    seller, _, thread = await host.eligible_pair()
    client, csrf = await signed_in(seller)
    resp = await client.put(f"/api/v1/threads/{thread}/block", headers={"X-CSRF-Token": csrf})
    assert resp.status == 403


async def test_post_and_read_messages_with_contact_flags(signed_in: Any, host: Host) -> None:
    seller, buyer, thread = await host.eligible_pair()
    buyer_client, csrf = await signed_in(buyer)
    url = f"/api/v1/threads/{thread}/messages"
    ok = await buyer_client.post(
        url, json={"text": "Budget is $1,500 for 2,000 words."}, headers={"X-CSRF-Token": csrf}
    )
    assert ok.status == 200
    assert (await ok.json())["flags"] == []
    hit = await buyer_client.post(
        url, json={"text": "text me at +1 415 555 0134"}, headers={"X-CSRF-Token": csrf}
    )
    assert (await hit.json())["flags"] == ["contact_details"]
    seller_client, _ = await signed_in(seller)
    detail = await (await seller_client.get(f"/api/v1/threads/{thread}")).json()
    assert [m["flags"] for m in detail["messages"]] == [[], ["contact_details"]]
    assert [m["sender_id"] for m in detail["messages"]] == [buyer, buyer]


async def test_integration_message_answers_flags(client: TestClient[Any, Any], host: Host) -> None:
    seller, _, thread = await host.eligible_pair()
    resp = await client.post(
        f"/api/v1/integration/threads/{thread}/messages",
        json={"sender_id": seller, "text": "mail me: sam at gmail dot com"},
        headers=AUTH,
    )
    assert resp.status == 201
    assert (await resp.json())["flags"] == ["contact_details"]


async def test_contact_details_split_across_two_messages_flag_the_second(
    client: TestClient[Any, Any], signed_in: Any, host: Host
) -> None:
    seller, _, thread = await host.eligible_pair()
    url = f"/api/v1/integration/threads/{thread}/messages"
    first = await client.post(
        url, json={"sender_id": seller, "text": "my number starts with 646"}, headers=AUTH
    )
    assert first.status == 201
    first_body = await first.json()
    assert first_body["flags"] == []
    assert first_body["joins"] == []
    second = await client.post(
        url, json={"sender_id": seller, "text": "555 0192 is the rest"}, headers=AUTH
    )
    second_body = await second.json()
    assert second_body["flags"] == ["contact_details"]
    assert second_body["joins"] == [first_body["id"]]
    seller_client, _ = await signed_in(seller)
    detail = await (await seller_client.get(f"/api/v1/threads/{thread}")).json()
    assert [(m["flags"], m["joins"]) for m in detail["messages"]] == [
        ([], []),
        (["contact_details"], [first_body["id"]]),
    ]


async def test_split_check_reads_only_the_same_senders_messages(
    client: TestClient[Any, Any], host: Host
) -> None:
    seller, buyer, thread = await host.eligible_pair()
    url = f"/api/v1/integration/threads/{thread}/messages"
    await client.post(
        url, json={"sender_id": buyer, "text": "my number starts with 646"}, headers=AUTH
    )
    reply = await client.post(
        url, json={"sender_id": seller, "text": "555 0192 is the rest"}, headers=AUTH
    )
    body = await reply.json()
    assert (body["flags"], body["joins"]) == ([], [])


async def test_buyer_message_counts_as_activity(signed_in: Any, host: Host) -> None:
    seller, buyer, thread = await host.eligible_pair()
    stale = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    await host.thread(thread, seller, buyer, last_buyer_activity_at=stale)
    seller_client, _ = await signed_in(seller)
    assert (await eligibility(seller_client, thread))["allowed"] is False
    buyer_client, csrf = await signed_in(buyer)
    await buyer_client.post(
        f"/api/v1/threads/{thread}/messages",
        json={"text": "still interested"},
        headers={"X-CSRF-Token": csrf},
    )
    assert (await eligibility(seller_client, thread))["allowed"] is True


async def test_closed_thread_refuses_messages(signed_in: Any, host: Host) -> None:
    seller, buyer, thread = await host.eligible_pair()
    await host.thread(thread, seller, buyer, state="closed")
    client, csrf = await signed_in(buyer)
    resp = await client.post(
        f"/api/v1/threads/{thread}/messages", json={"text": "hi"}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 409
