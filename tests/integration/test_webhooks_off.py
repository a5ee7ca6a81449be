"""Without ``INBOXCALL_WEBHOOK_URL`` no event is written: no outbox grows for nobody, and
no backlog of stale events floods a receiver configured later."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select

from server.appkeys import DB, WEBHOOK_SENDER
from server.db.models import AuditEntry, WebhookEvent
from tests.support.review_data import seed_reviewable_call
from tests.support.service import Host

pytestmark = [pytest.mark.integration]


async def test_no_url_no_events_and_no_sender(
    app: web.Application, host: Host, signed_in: Any
) -> None:
    await host.user("s1", "seller", business_program="member")
    await host.user("b1", "buyer", vid=True)
    await host.thread("t1", "s1", "b1")
    await host.user("rev1", "reviewer")
    await seed_reviewable_call(app, call_id="c1", thread_id="t1", seller_id="s1", buyer_id="b1")
    reviewer, csrf = await signed_in("rev1")
    await reviewer.post("/api/v1/review/calls/c1/claim", headers={"X-CSRF-Token": csrf})
    resp = await reviewer.post(
        "/api/v1/review/calls/c1/verdict",
        json={"verdict": "abusive", "subject_user_id": "b1"},
        headers={"X-CSRF-Token": csrf},
    )
    assert resp.status == 200, await resp.text()
    assert WEBHOOK_SENDER not in app
    async with app[DB]() as session:
        verdicts = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "review.verdict")
        )
        events = await session.scalar(select(func.count()).select_from(WebhookEvent))
    assert verdicts == 1  # the change happened...
    assert events == 0  # ...and wrote no event
