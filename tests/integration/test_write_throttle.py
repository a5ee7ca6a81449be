"""One person cannot flood the inbox or the report queue over HTTP (issue 13, finding 9:
500 messages in 2.2 s by one user; reports too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from server.settings import Settings
from tests.support.review_data import seed_reviewable_call
from tests.support.service import Host, make_settings

pytestmark = pytest.mark.integration

BURST = 4


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A slow refill (one a minute) so that what a test sends within it is the burst exactly.
    return make_settings(
        tmp_path,
        message_rate_burst=BURST,
        message_rate_per_minute=1,
        report_rate_burst=2,
        report_rate_per_minute=1,
    )


def assert_rate_limited(status: int, body: dict[str, Any], headers: Any) -> None:
    assert status == 429
    assert body["error"]["code"] == "rate_limited"
    assert "too fast" in body["error"]["message"]
    assert int(headers["Retry-After"]) >= 1


async def test_a_message_flood_is_cut_at_the_burst_and_stores_nothing_past_it(
    signed_in: Any, host: Host
) -> None:
    _seller, buyer, thread = await host.eligible_pair()
    flooder, csrf = await signed_in(buyer)
    url = f"/api/v1/threads/{thread}/messages"
    statuses = []
    for n in range(BURST * 5):
        resp = await flooder.post(url, json={"text": f"spam {n}"}, headers={"X-CSRF-Token": csrf})
        statuses.append(resp.status)
        if resp.status != 200:
            assert_rate_limited(resp.status, await resp.json(), resp.headers)
    assert statuses == [200] * BURST + [429] * (BURST * 4)
    detail = await (await flooder.get(f"/api/v1/threads/{thread}")).json()
    assert [m["text"] for m in detail["messages"]] == [f"spam {n}" for n in range(BURST)]


async def test_the_throttle_is_per_person(signed_in: Any, host: Host) -> None:
    seller, buyer, thread = await host.eligible_pair()
    flooder, csrf = await signed_in(buyer)
    url = f"/api/v1/threads/{thread}/messages"
    for n in range(BURST + 1):
        await flooder.post(url, json={"text": f"spam {n}"}, headers={"X-CSRF-Token": csrf})
    other, other_csrf = await signed_in(seller)
    resp = await other.post(url, json={"text": "hello"}, headers={"X-CSRF-Token": other_csrf})
    assert resp.status == 200


async def test_a_report_flood_is_throttled(
    signed_in: Any, host: Host, app: web.Application
) -> None:
    seller, buyer, thread = await host.eligible_pair()
    await seed_reviewable_call(
        app, call_id="call1", thread_id=thread, seller_id=seller, buyer_id=buyer
    )
    reporter, csrf = await signed_in(buyer)
    url = "/api/v1/calls/call1/report"
    answers = []
    for _ in range(6):
        resp = await reporter.post(url, json={"reason": "other"}, headers={"X-CSRF-Token": csrf})
        answers.append(resp.status)
        if resp.status != 201:
            assert_rate_limited(resp.status, await resp.json(), resp.headers)
    assert answers == [201, 201, 429, 429, 429, 429]
