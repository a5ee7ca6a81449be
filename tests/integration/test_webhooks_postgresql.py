"""Two nodes' webhook senders sharing one PostgreSQL outbox never take the same event:
claims use a lease and ``FOR UPDATE SKIP LOCKED``. Every event arrives exactly once when
nothing fails (at least once is the promise; exactly once here shows no double claims).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.db.migrate import upgrade_to_head_async
from server.db.models import WebhookEvent
from server.db.session import make_engine, make_session_factory
from server.webhooks.outbox import emit, enable_webhooks
from server.webhooks.sender import BATCH_SIZE, WebhookSender
from tests.support.postgres import PostgresServer
from tests.support.service import make_settings
from tests.support.webhook_receiver import SECRET, WebhookReceiver, running_receiver

pytestmark = pytest.mark.integration

EVENTS = 5 * BATCH_SIZE


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with running_receiver() as r:
        yield r


async def test_two_senders_share_the_outbox_without_double_claims(
    tmp_path: Path, postgres: PostgresServer, receiver: WebhookReceiver
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=postgres.url,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_poll_seconds=0.05,
    )
    await upgrade_to_head_async(settings.resolved_database_url)
    engines = [make_engine(settings.resolved_database_url) for _ in range(2)]
    factories = [make_session_factory(engine) for engine in engines]
    for factory in factories:
        enable_webhooks(factory)
    receiver.latency = 0.02  # a host that takes a moment to answer
    async with factories[0]() as session, session.begin():
        for n in range(EVENTS):
            emit(session, "call.ended", {"call_id": f"c{n}"})
    # Each node's sender has its own engine, as two processes would.
    senders = [WebhookSender(settings, factory) for factory in factories]
    try:
        for sender in senders:
            sender.start()
        await receiver.wait_for(lambda ds: len(ds) >= EVENTS, f"{EVENTS} deliveries")
        async with factories[1]() as session:
            async with asyncio.timeout(20):
                while await session.scalar(
                    select(func.count())
                    .select_from(WebhookEvent)
                    .where(WebhookEvent.state != "delivered")
                ):
                    await session.rollback()  # a fresh snapshot for the next look
                    await asyncio.sleep(0.05)
            attempts = (await session.scalars(select(WebhookEvent.attempts))).all()
    finally:
        for sender in senders:
            await sender.aclose()
        for engine in engines:
            await engine.dispose()
    ids = [d.id for d in receiver.deliveries]
    assert len(ids) == EVENTS and len(set(ids)) == EVENTS
    assert all(d.signature_ok for d in receiver.deliveries)
    assert sorted(d.event["data"]["call_id"] for d in receiver.deliveries) == sorted(
        f"c{n}" for n in range(EVENTS)
    )
    assert set(attempts) == {1}
    # Both nodes took part (the slow host makes their rounds overlap).
    assert all(sender.attempts_made > 0 for sender in senders), [
        sender.attempts_made for sender in senders
    ]
