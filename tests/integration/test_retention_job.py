"""The retention purge with a moved clock: each class of recording, tombstones, audit rows."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select, update

from server.appkeys import DB, RECORDING_STORAGE, RETENTION_JOB
from server.clock import utcnow
from server.db.models import AuditEntry, Call, Recording, Review
from tests.support.review_data import seed_reviewable_call
from tests.support.service import Host

pytestmark = pytest.mark.integration


async def states(app: web.Application) -> dict[str, str]:
    async with app[DB]() as session:
        rows = (await session.scalars(select(Recording))).all()
        return {r.call_id + "/" + r.participant_id: r.state for r in rows}


async def test_each_class_of_recording(host: Host, app: web.Application, signed_in: Any) -> None:
    seller, buyer, thread = await host.eligible_pair()
    created = utcnow() - timedelta(days=1)
    common = {"thread_id": thread, "seller_id": seller, "buyer_id": buyer, "created_at": created}
    await seed_reviewable_call(app, call_id="unsampled", sampled=False, **common)
    await seed_reviewable_call(app, call_id="pending", sampled=True, **common)
    await seed_reviewable_call(app, call_id="clean", sampled=True, **common)
    await seed_reviewable_call(app, call_id="violation", sampled=True, **common)
    async with app[DB]() as session, session.begin():
        await session.execute(
            update(Call).where(Call.id == "unsampled").values(review_required=False)
        )
        session.add(
            Review(
                call_id="clean", verdict="clean", verdict_at=created + timedelta(days=5), notes=""
            )
        )
        session.add(Review(call_id="violation", verdict="abusive", verdict_at=created, notes=""))
        await session.execute(
            update(Recording).where(Recording.call_id == "violation").values(hold="violation")
        )

    job = app[RETENTION_JOB]
    assert await job.run_once(now=utcnow()) == []
    # Day 31: the unsampled call's recordings go; the others stay.
    deleted = await job.run_once(now=created + timedelta(days=31))
    assert len(deleted) == 2
    s = await states(app)
    assert s[f"unsampled/{seller}"] == s[f"unsampled/{buyer}"] == "deleted"
    assert {v for k, v in s.items() if not k.startswith("unsampled")} == {"finalised"}
    # Day 36: 31 days after the clean verdict; pending reviews and violations are kept.
    deleted = await job.run_once(now=created + timedelta(days=36))
    assert len(deleted) == 2
    s = await states(app)
    assert s[f"clean/{seller}"] == "deleted"
    assert s[f"pending/{seller}"] == "finalised"
    assert s[f"violation/{seller}"] == "finalised"
    assert await job.run_once(now=created + timedelta(days=3650)) == []
    # Released by an admin: the violation's recordings follow the reviewed-clean clock.
    async with app[DB]() as session, session.begin():
        await session.execute(
            update(Recording)
            .where(Recording.call_id == "violation")
            .values(hold="released", hold_released_at=created + timedelta(days=40))
        )
    assert len(await job.run_once(now=created + timedelta(days=3650))) == 2

    store = app[RECORDING_STORAGE]
    async with app[DB]() as session:
        tombstones = (
            await session.scalars(select(Recording).where(Recording.state == "deleted"))
        ).all()
        assert len(tombstones) == 6
        for row in tombstones:
            assert row.deleted_at is not None
            assert row.deleted_reason and row.deleted_reason.startswith("retention: ")
            with pytest.raises(Exception):  # noqa: B017 - the store says "gone" its own way
                await store.size(row.storage_key)
        audited = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "recording.delete")
        )
        assert audited == 6


async def test_concurrent_purges_delete_and_audit_once(host: Host, app: web.Application) -> None:
    seller, buyer, thread = await host.eligible_pair()
    created = utcnow() - timedelta(days=40)
    await seed_reviewable_call(
        app,
        call_id="old",
        thread_id=thread,
        seller_id=seller,
        buyer_id=buyer,
        created_at=created,
        sampled=False,
    )
    async with app[DB]() as session, session.begin():
        await session.execute(update(Call).where(Call.id == "old").values(review_required=False))
    job = app[RETENTION_JOB]
    first, second = await asyncio.gather(job.run_once(), job.run_once())
    assert len(first) + len(second) == 2
    assert set(first).isdisjoint(second)
    async with app[DB]() as session:
        audited = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "recording.delete")
        )
    assert audited == 2
