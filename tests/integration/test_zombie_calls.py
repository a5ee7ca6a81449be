"""No zombie call: when the database refuses writes mid-call (its disk full), a participant
can still end the call, a change that cannot be stored ends the call cleanly, the claims
are freed, and the call's end is stored once the database takes writes again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from server.appkeys import DB
from tests.support.rtc_client import CallHarness

pytestmark = pytest.mark.integration

REFUSING = ("calls", "call_events", "messages")


async def refuse_writes(calls: CallHarness) -> None:
    """Reads keep working; every write to the call's tables fails, as on a full disk."""
    async with calls.app[DB]() as session, session.begin():
        for table in REFUSING:
            for op in ("INSERT", "UPDATE"):
                await session.execute(
                    text(
                        f"CREATE TRIGGER refuse_{op.lower()}_{table} BEFORE {op} ON {table} "
                        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                    )
                )


async def accept_writes(calls: CallHarness) -> None:
    async with calls.app[DB]() as session, session.begin():
        for table in REFUSING:
            for op in ("insert", "update"):
                await session.execute(text(f"DROP TRIGGER refuse_{op}_{table}"))


async def stored_state(calls: CallHarness, call_id: str) -> Any:
    row = await calls.call_row(call_id)
    return row.state, row.end_reason, row.end_detail


async def ended_in_store(calls: CallHarness, call_id: str, timeout: float = 10) -> Any:
    """The row once the deferred write stored the end (its retry pauses are short at
    first; polled, as nothing announces it)."""
    async with asyncio.timeout(timeout):
        while (state := await stored_state(calls, call_id))[0] != "ended":
            await asyncio.sleep(0.05)
    return state


async def test_a_hang_up_ends_the_call_even_when_the_database_refuses_it(
    calls: CallHarness,
) -> None:
    call_id, seller, buyer = await calls.connected_call()
    await refuse_writes(calls)
    await seller.ws.ok("hang_up", call_id=call_id)
    for ws in (seller.ws, buyer.ws):
        ended = await ws.call_state("ended")
        assert ended["end_reason"] == "hung_up"
    assert call_id not in calls.service.live_call_ids
    assert calls.service.live_call_of(seller.ws.user_id) is None  # claims freed
    assert (await stored_state(calls, call_id))[0] == "active"  # not yet stored

    await accept_writes(calls)
    # The deferred write lands once the database takes writes again.
    assert await ended_in_store(calls, call_id) == ("ended", "hung_up", None)
    # The thread is free again: a new call can start.
    again, *_ = await calls.connected_call("again")
    assert again != call_id


async def test_a_change_that_cannot_be_stored_ends_the_call_cleanly(
    calls: CallHarness,
) -> None:
    call_id, seller, buyer = await calls.connected_call()
    await refuse_writes(calls)
    refused = await seller.ws.error(
        "media_state", "internal_error", call_id=call_id, audio=False, video=True
    )
    assert "ended" in refused["message"]
    for ws in (seller.ws, buyer.ws):
        ended = await ws.call_state("ended")
        assert (ended["end_reason"], ended["detail"]) == ("failed", "storage_failed")
    assert call_id not in calls.service.live_call_ids
    await accept_writes(calls)
    assert await ended_in_store(calls, call_id) == ("ended", "failed", "storage_failed")
