"""Truly concurrent review requests (asyncio.gather over real HTTP), shared by the SQLite
and the PostgreSQL tests: a race settled by the database, not by luck of scheduling."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.appkeys import DB
from server.db.models import AuditEntry, Violation

Reviewer = tuple[TestClient[Any, Any], str]  # a signed-in client and its CSRF token
RACERS = 10


async def _count(app: web.Application, model: Any, *where: Any) -> int:
    async with app[DB]() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _answer(resp: Any) -> tuple[int, Any]:
    return resp.status, await resp.json()


async def concurrent_verdicts_make_one_violation(
    app: web.Application, reviewer: Reviewer, call_id: str, subject_id: str
) -> None:
    client, csrf = reviewer
    headers = {"X-CSRF-Token": csrf}
    claim = await client.post(f"/api/v1/review/calls/{call_id}/claim", headers=headers)
    assert claim.status == 200, await claim.text()
    body = {"verdict": "off_platform_contact", "subject_user_id": subject_id}

    async def verdict() -> tuple[int, Any]:
        url = f"/api/v1/review/calls/{call_id}/verdict"
        return await _answer(await client.post(url, json=body, headers=headers))

    answers = await asyncio.gather(*(verdict() for _ in range(RACERS)))
    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: 1, 409: RACERS - 1}, answers
    assert {b["error"]["code"] for s, b in answers if s == 409} == {"already_reviewed"}
    assert await _count(app, Violation, Violation.call_id == call_id) == 1
    verdicts = AuditEntry.action == "review.verdict", AuditEntry.target_id == call_id
    assert await _count(app, AuditEntry, *verdicts) == 1


async def concurrent_claims_answer_409_never_500(
    app: web.Application, reviewers: list[Reviewer], call_id: str
) -> None:
    async def claim(reviewer: Reviewer) -> tuple[int, Any]:
        client, csrf = reviewer
        url = f"/api/v1/review/calls/{call_id}/claim"
        return await _answer(await client.post(url, headers={"X-CSRF-Token": csrf}))

    answers = await asyncio.gather(*(claim(reviewers[i % len(reviewers)]) for i in range(RACERS)))
    assert {status for status, _ in answers} <= {200, 409}, answers
    granted = [body for status, body in answers if status == 200]
    assert granted, answers
    # One reviewer holds the call; the others were told who got there first.
    assert len({body["claimed_by"] for body in granted}) == 1, answers
    assert {b["error"]["code"] for s, b in answers if s == 409} <= {
        "claimed_by_other",
        "review_changed",
    }
    claims = AuditEntry.action == "review.claim", AuditEntry.target_id == call_id
    assert await _count(app, AuditEntry, *claims) == len(granted)
