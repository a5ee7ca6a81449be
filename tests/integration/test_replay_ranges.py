"""Range requests on the reviewer's replay media, through the real server (issue 13,
finding 9: ``bytes=-0`` answered 206 with the whole file, ``items=0-1`` answered 416)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.support.review_data import MEDIA_BYTES, seed_reviewable_call
from tests.support.service import Host

pytestmark = pytest.mark.integration


async def test_a_zero_length_suffix_is_416_and_an_unknown_unit_is_ignored(
    signed_in: Any, host: Host, app: web.Application
) -> None:
    seller, buyer, thread = await host.eligible_pair()
    await host.user("rev1", "reviewer")
    recording, _ = await seed_reviewable_call(
        app, call_id="call1", thread_id=thread, seller_id=seller, buyer_id=buyer
    )
    reviewer, csrf = await signed_in("rev1")
    grant = await reviewer.post(
        f"/api/v1/review/recordings/{recording}/replay", headers={"X-CSRF-Token": csrf}
    )
    url = (await grant.json())["media_url"]
    size = len(MEDIA_BYTES)

    empty = await reviewer.get(url, headers={"Range": "bytes=-0"})
    assert empty.status == 416
    assert empty.headers["Content-Range"] == f"bytes */{size}"
    assert (await empty.json())["error"]["code"] == "range_not_satisfiable"

    other_unit = await reviewer.get(url, headers={"Range": "items=0-1"})
    assert other_unit.status == 200
    assert "Content-Range" not in other_unit.headers
    assert await other_unit.read() == MEDIA_BYTES

    backwards = await reviewer.get(url, headers={"Range": "bytes=9-3"})
    assert backwards.status == 416
    assert (await backwards.json())["error"]["code"] == "bad_range"
    tail = await reviewer.get(url, headers={"Range": "BYTES=-3"})
    assert tail.status == 206
    assert await tail.read() == MEDIA_BYTES[-3:]
