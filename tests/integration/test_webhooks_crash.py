"""Webhooks survive a kill -9: an event the host refused before the crash is delivered,
with the same id and a valid signature, by the restarted service.

Everything real: ``inboxcall serve`` in a child process, the host's endpoint a real HTTP
server on loopback in this process, SQLite on disk.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from server.db.models import WebhookEvent
from server.db.session import make_engine, make_session_factory
from tests.support.service_process import (
    ServiceProcess,
    free_port,
    open_socket,
    push_eligible_pair,
    sign_in,
)
from tests.support.webhook_receiver import SECRET, WebhookReceiver, running_receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with running_receiver() as r:
        yield r


def webhook_env(receiver: WebhookReceiver) -> dict[str, str]:
    return {
        "INBOXCALL_WEBHOOK_URL": receiver.url,
        "INBOXCALL_WEBHOOK_SECRET": SECRET,
        "INBOXCALL_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "INBOXCALL_WEBHOOK_POLL_SECONDS": "0.1",
        "INBOXCALL_WEBHOOK_TIMEOUT_SECONDS": "2",
    }


async def outbox(data_dir: Path) -> dict[str, WebhookEvent]:
    engine = make_engine(f"sqlite+aiosqlite:///{data_dir / 'inboxcall.sqlite3'}")
    try:
        async with make_session_factory(engine)() as session:
            return {r.id: r for r in (await session.scalars(select(WebhookEvent))).all()}
    finally:
        await engine.dispose()


async def declined_call(base: str) -> str:
    """Through the real service's APIs: the host pushes a pair, the seller rings, the
    buyer declines: ``call.ended`` is written."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as host,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as seller_http,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as buyer_http,
    ):
        await push_eligible_pair(host, base)
        await sign_in(seller_http, base, "s1")
        await sign_in(buyer_http, base, "b1")
        seller = await open_socket(seller_http, base)
        buyer = await open_socket(buyer_http, base)
        try:
            started = await seller.ok("start_call", thread_id="t1", recording_notice_accepted=True)
            call_id = str(started["call_id"])
            await buyer.wait_for("incoming_call")
            await buyer.ok("decline_call", call_id=call_id)
            await seller.call_state("ended")
        finally:
            await seller.ws.close()
            await buyer.ws.close()
    return call_id


async def test_an_undelivered_event_is_delivered_after_kill_9_and_restart(
    tmp_path: Path, services: list[ServiceProcess], receiver: WebhookReceiver
) -> None:
    data_dir = tmp_path / "data"
    receiver.default_status = 503  # the host is down
    first = ServiceProcess(data_dir, free_port(), **webhook_env(receiver))
    services.append(first)
    await first.start()
    call_id = await declined_call(first.base)
    refused = await receiver.wait_for(
        lambda ds: any(d.type == "call.ended" for d in ds), "a refused call.ended"
    )
    event_id = next(d.id for d in refused if d.type == "call.ended")
    await first.kill(signal.SIGKILL)
    assert first.process is not None and first.process.returncode == -signal.SIGKILL

    # Killed between the refusal and writing it down, or just after: either way the row
    # is still pending (perhaps leased by the dead process until its lease runs out).
    row = (await outbox(data_dir))[event_id]
    assert row.state == "pending" and row.delivered_at is None

    receiver.default_status = 200  # the host is back
    second = ServiceProcess(data_dir, free_port(), **webhook_env(receiver))
    services.append(second)
    await second.start()
    await receiver.wait_for(
        lambda ds: any(d.id == event_id and d.answered == 200 for d in ds),
        "the event delivered by the restarted service",
        timeout=60,
    )
    # A clean stop lets the sender write down what it delivered.
    await second.kill(signal.SIGTERM)
    assert second.process is not None and second.process.returncode == 0

    attempts = [d for d in receiver.deliveries if d.id == event_id]
    assert attempts[0].answered == 503 and attempts[-1].answered == 200
    assert len({d.body for d in attempts}) == 1  # the same event, byte for byte
    assert all(d.signature_ok for d in attempts)
    assert attempts[-1].event["type"] == "call.ended"
    assert attempts[-1].event["data"]["call_id"] == call_id
    assert (await outbox(data_dir))[event_id].state == "delivered"
