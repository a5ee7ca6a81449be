"""The inbox API as the pages read it: latest activity first, unread counts and read
markers, call notes (the join link for the buyer only, only while joinable), and the one
call duration stored when a call ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from server.appkeys import DB, SETTINGS
from server.calls import store
from server.calls.join_links import join_path, make_join_token
from server.db.models import Call, Message, Thread
from server.messages import add_system_message
from signaling.call_state import (
    Accept,
    CallTransition,
    HangUp,
    LegState,
    LegStateChanged,
    SocketAttached,
    SocketClosed,
    advance,
    start_call,
)
from tests.support.service import Host

pytestmark = pytest.mark.integration


async def inbox(client: Any) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/threads")
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["threads"])


async def post(client: Any, csrf: str, thread: str, text: str) -> None:
    resp = await client.post(
        f"/api/v1/threads/{thread}/messages", json={"text": text}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 200, await resp.text()


async def test_latest_activity_first_unread_counts_and_read_markers(
    signed_in: Any, host: Host
) -> None:
    seller, buyer, older = await host.eligible_pair()
    await host.thread("newer", seller, buyer)
    seller_client, seller_csrf = await signed_in(seller)
    buyer_client, buyer_csrf = await signed_in(buyer)
    await post(buyer_client, buyer_csrf, "newer", "First question")
    await post(buyer_client, buyer_csrf, older, "A later question")
    await post(seller_client, seller_csrf, older, "An answer")

    threads = await inbox(seller_client)
    assert [t["id"] for t in threads] == [older, "newer"]
    assert {t["id"]: t["unread_count"] for t in threads} == {older: 1, "newer": 1}
    assert threads[0]["last_message"]["text"] == "An answer"
    assert threads[0]["last_activity_at"] == threads[0]["last_message"]["created_at"]
    # The buyer's own messages are never unread to them.
    assert {t["id"]: t["unread_count"] for t in await inbox(buyer_client)} == {
        older: 1,
        "newer": 0,
    }

    resp = await seller_client.post(
        f"/api/v1/threads/{older}/read", headers={"X-CSRF-Token": seller_csrf}
    )
    assert resp.status == 200, await resp.text()
    assert {t["id"]: t["unread_count"] for t in await inbox(seller_client)} == {
        older: 0,
        "newer": 1,
    }
    # Reading is per person; a stranger's thread is not theirs to mark.
    assert {t["id"]: t["unread_count"] for t in await inbox(buyer_client)}[older] == 1
    await host.eligible_pair("-other")
    resp = await seller_client.post(
        "/api/v1/threads/thread-other/read", headers={"X-CSRF-Token": seller_csrf}
    )
    assert resp.status == 404


async def add_invite(app: web.Application, thread_id: str, seller: str, buyer: str) -> str:
    """A ringing call and the join link the service leaves for an offline buyer."""
    settings = app[SETTINGS]
    async with app[DB]() as session, session.begin():
        call = Call(thread_id=thread_id, seller_id=seller, buyer_id=buyer, state="ringing")
        session.add(call)
        await session.flush()
        token = make_join_token(
            settings.secret_key.get_secret_value(), call_id=call.id, buyer_id=buyer
        )
        thread = await session.get(Thread, thread_id)
        assert thread is not None
        text = f"Incoming video call. Join: {join_path(call.id, token)}"
        add_system_message(session, thread, text, call_id=call.id)
        return call.id


async def test_the_join_link_is_the_buyers_only_while_the_call_can_be_joined(
    app: web.Application, signed_in: Any, host: Host
) -> None:
    seller, buyer, thread = await host.eligible_pair()
    seller_client, _ = await signed_in(seller)
    buyer_client, _ = await signed_in(buyer)
    call_id = await add_invite(app, thread, seller, buyer)

    async def note(client: Any) -> dict[str, Any]:
        resp = await client.get(f"/api/v1/threads/{thread}")
        (message,) = [m for m in (await resp.json())["messages"] if m["kind"] == "system"]
        return dict(message["call"])

    buyer_note = await note(buyer_client)
    assert buyer_note["kind"] == "invite" and buyer_note["id"] == call_id
    assert buyer_note["join_url"].startswith(f"/calls/{call_id}/join?token=")
    assert (await note(seller_client))["join_url"] is None
    # News to the buyer (unread), not to the seller who placed the call.
    assert (await inbox(buyer_client))[0]["unread_count"] == 1
    assert (await inbox(seller_client))[0]["unread_count"] == 0

    async with app[DB]() as session, session.begin():
        call = await session.get(Call, call_id)
        assert call is not None
        call.state, call.end_reason = "ended", "missed"
    ended = await note(buyer_client)
    assert ended["join_url"] is None and ended["end_reason"] == "missed"


async def test_a_call_stores_its_duration_without_the_reconnect_grace(
    app: web.Application, signed_in: Any, host: Host
) -> None:
    seller, buyer, thread = await host.eligible_pair()
    buyer_client, _ = await signed_in(buyer)
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    # Rings 4 s, connects at 6 s, the buyer is lost 20-27 s, hang-up at 40 s.
    first = start_call(call_id="c1", thread_id=thread, seller_id=seller, buyer_id=buyer, now=t0)
    steps: list[CallTransition] = [first]
    for event, seconds in (
        (Accept(buyer), 4),
        (LegStateChanged(seller, LegState.CONNECTED), 5),
        (LegStateChanged(buyer, LegState.CONNECTED), 6),
        (SocketClosed(buyer), 20),
        (SocketAttached(buyer), 27),
        (HangUp(seller), 40),
    ):
        steps.append(advance(steps[-1].state, event, at(seconds)))
    async with app[DB]() as session, session.begin():
        row = Call(
            id="c1",
            thread_id=thread,
            seller_id=seller,
            buyer_id=buyer,
            state="ringing",
            created_at=t0,
        )
        session.add(row)
        await session.flush()
        for step in steps:
            await store.add_changes(session, row, step.state, step.changes)

    async with app[DB]() as session:
        row_after = await session.get(Call, "c1")
        assert row_after is not None
        assert row_after.duration_seconds == pytest.approx(40 - 6 - 7)
        texts = list(await session.scalars(select(Message.text)))
    assert "Video call ended (0:27)" in texts
    resp = await buyer_client.get("/api/v1/calls/c1")
    assert (await resp.json())["duration_seconds"] == pytest.approx(27)
