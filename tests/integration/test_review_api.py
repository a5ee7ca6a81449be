"""Compliance review over HTTP: access by role, claims, replay with ranges, verdicts, audit."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import event, func, select, text, update

from server.appkeys import DB
from server.clock import utcnow
from server.db.models import AuditEntry, Call, Review
from tests.support.review_data import MEDIA_BYTES, seed_reviewable_call
from tests.support.review_races import (
    concurrent_claims_answer_409_never_500,
    concurrent_verdicts_make_one_violation,
)
from tests.support.service import AUTH, Host

pytestmark = pytest.mark.integration


@pytest.fixture
async def review_setup(host: Host, app: web.Application) -> dict[str, Any]:
    seller, buyer, thread = await host.eligible_pair()
    await host.user("rev1", "reviewer")
    await host.user("rev2", "reviewer")
    await host.user("adm", "admin")
    recordings = await seed_reviewable_call(
        app, call_id="call1", thread_id=thread, seller_id=seller, buyer_id=buyer
    )
    return {"seller": seller, "buyer": buyer, "thread": thread, "recordings": recordings}


async def audit_count(app: web.Application, action: str, target_id: str) -> int:
    async with app[DB]() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == action, AuditEntry.target_id == target_id)
            )
            or 0
        )


async def test_only_reviewers_and_admins_reach_review(
    signed_in: Any, review_setup: dict[str, Any], client: TestClient[Any, Any]
) -> None:
    rec = review_setup["recordings"][0]
    paths = ["/api/v1/review/queue", "/api/v1/review/calls/call1", "/api/v1/review/audit"]
    for path in paths:
        assert (await client.get(path)).status == 401
    for participant in (review_setup["seller"], review_setup["buyer"]):
        c, csrf = await signed_in(participant)
        for path in paths:
            assert (await c.get(path)).status == 403, path
        resp = await c.post(
            f"/api/v1/review/recordings/{rec}/replay", headers={"X-CSRF-Token": csrf}
        )
        assert resp.status == 403
        assert (await c.get(f"/api/v1/review/recordings/{rec}/media")).status == 403
    for staff in ("rev1", "adm"):
        c, _ = await signed_in(staff)
        queue = await (await c.get("/api/v1/review/queue")).json()
        assert [item["call_id"] for item in queue["calls"]] == ["call1"]
        assert (await c.get("/api/v1/review/calls/call1")).status == 200


async def test_queue_filters(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application
) -> None:
    await seed_reviewable_call(
        app,
        call_id="call2",
        thread_id=review_setup["thread"],
        seller_id=review_setup["seller"],
        buyer_id=review_setup["buyer"],
        created_at=utcnow() - timedelta(days=3),
        sampled=False,
        mandatory=["contact_details"],
    )
    c, _ = await signed_in("rev1")

    async def ids(query: str) -> list[str]:
        return [
            i["call_id"]
            for i in (await (await c.get(f"/api/v1/review/queue{query}")).json())["calls"]
        ]

    assert await ids("") == ["call2", "call1"]
    assert await ids("?kind=mandatory") == ["call2"]
    assert await ids("?kind=sampled") == ["call1"]
    assert await ids("?min_age_hours=24") == ["call2"]
    assert await ids("?max_age_hours=24") == ["call1"]
    assert (await c.get("/api/v1/review/queue?kind=bogus")).status == 422


async def test_claims_are_exclusive_and_expire(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application
) -> None:
    r1, csrf1 = await signed_in("rev1")
    r2, csrf2 = await signed_in("rev2")
    resp = await r1.post("/api/v1/review/calls/call1/claim", headers={"X-CSRF-Token": csrf1})
    assert (await resp.json())["claimed_by"] == "rev1"
    resp = await r2.post("/api/v1/review/calls/call1/claim", headers={"X-CSRF-Token": csrf2})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "claimed_by_other"
    resp = await r2.post(
        "/api/v1/review/calls/call1/verdict",
        json={"verdict": "clean"},
        headers={"X-CSRF-Token": csrf2},
    )
    assert resp.status == 409
    async with app[DB]() as session, session.begin():
        await session.execute(
            update(Review).values(claim_expires_at=utcnow() - timedelta(seconds=1))
        )
    resp = await r2.post("/api/v1/review/calls/call1/claim", headers={"X-CSRF-Token": csrf2})
    assert resp.status == 200
    assert await audit_count(app, "review.claim", "call1") == 2


async def test_replay_is_audited_once_and_serves_ranges(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application
) -> None:
    rec = review_setup["recordings"][0]
    r1, csrf = await signed_in("rev1")
    grant = await (
        await r1.post(f"/api/v1/review/recordings/{rec}/replay", headers={"X-CSRF-Token": csrf})
    ).json()
    assert grant["mime_type"] == "video/webm"
    url = grant["media_url"]
    full = await r1.get(url)
    assert full.status == 200
    assert full.headers["Content-Type"] == "video/webm"
    assert full.headers["Accept-Ranges"] == "bytes"
    assert await full.read() == MEDIA_BYTES
    part = await r1.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(MEDIA_BYTES)}"
    assert await part.read() == MEDIA_BYTES[100:200]
    tail = await r1.get(url, headers={"Range": "bytes=-10"})
    assert await tail.read() == MEDIA_BYTES[-10:]
    open_end = await r1.get(url, headers={"Range": f"bytes={len(MEDIA_BYTES) - 5}-"})
    assert await open_end.read() == MEDIA_BYTES[-5:]
    past = await r1.get(
        url, headers={"Range": f"bytes={len(MEDIA_BYTES)}-{len(MEDIA_BYTES) + 100}"}
    )
    assert past.status == 416
    assert past.headers["Content-Range"] == f"bytes */{len(MEDIA_BYTES)}"
    clipped = await r1.get(url, headers={"Range": f"bytes=10-{len(MEDIA_BYTES) * 2}"})
    assert await clipped.read() == MEDIA_BYTES[10:]
    assert await audit_count(app, "recording.replay", rec) == 1


async def test_media_needs_the_reviewers_own_grant(
    signed_in: Any, review_setup: dict[str, Any]
) -> None:
    rec, other_rec = review_setup["recordings"]
    r1, csrf = await signed_in("rev1")
    r2, _ = await signed_in("rev2")
    grant = await (
        await r1.post(f"/api/v1/review/recordings/{rec}/replay", headers={"X-CSRF-Token": csrf})
    ).json()
    assert (await r2.get(grant["media_url"])).status == 403
    assert (await r1.get(f"/api/v1/review/recordings/{rec}/media")).status == 403
    assert (await r1.get(f"/api/v1/review/recordings/{rec}/media?grant=forged.value")).status == 403
    token = grant["media_url"].split("grant=")[1]
    assert (
        await r1.get(f"/api/v1/review/recordings/{other_rec}/media?grant={token}")
    ).status == 403


@pytest.mark.parametrize("bad", ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "x" * 65, "nope"])
async def test_path_traversal_and_unknown_recordings(
    signed_in: Any, review_setup: dict[str, Any], bad: str
) -> None:
    r1, csrf = await signed_in("rev1")
    resp = await r1.post(f"/api/v1/review/recordings/{bad}/replay", headers={"X-CSRF-Token": csrf})
    assert resp.status in (404, 422)
    assert "error" in await resp.json()


async def test_verdicts(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application, client: TestClient[Any, Any]
) -> None:
    seller = review_setup["seller"]
    r1, csrf = await signed_in("rev1")
    h = {"X-CSRF-Token": csrf}
    resp = await r1.post("/api/v1/review/calls/call1/verdict", json={"verdict": "clean"}, headers=h)
    assert (await resp.json())["error"]["code"] == "claim_required"
    await r1.post("/api/v1/review/calls/call1/claim", headers=h)
    resp = await r1.post(
        "/api/v1/review/calls/call1/verdict", json={"verdict": "off_platform_contact"}, headers=h
    )
    assert (await resp.json())["error"]["code"] == "subject_required"
    resp = await r1.post(
        "/api/v1/review/calls/call1/verdict",
        json={
            "verdict": "off_platform_contact",
            "notes": "asked for WhatsApp at 01:12",
            "subject_user_id": seller,
        },
        headers=h,
    )
    assert resp.status == 200
    assert (await resp.json())["verdict"] == "off_platform_contact"
    resp = await r1.post("/api/v1/review/calls/call1/verdict", json={"verdict": "clean"}, headers=h)
    assert resp.status == 409
    assert await audit_count(app, "review.verdict", "call1") == 1
    # Shown to the host marketplace, and the seller's account is now restricted here.
    violations = await (
        await client.get(f"/api/v1/integration/users/{seller}/violations", headers=AUTH)
    ).json()
    assert [v["verdict"] for v in violations["violations"]] == ["off_platform_contact"]
    seller_client, _ = await signed_in(seller)
    eligibility = await (
        await seller_client.get(f"/api/v1/threads/{review_setup['thread']}/call-eligibility")
    ).json()
    assert [r["code"] for r in eligibility["reasons"]] == ["account_restricted"]
    detail = await (await r1.get("/api/v1/review/calls/call1")).json()
    assert {r["hold"] for r in detail["recordings"]} == {"violation"}
    assert [a["action"] for a in detail["audit"]] == ["review.claim", "review.verdict"]


async def test_deleting_recordings(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application
) -> None:
    rec = review_setup["recordings"][0]
    r1, csrf = await signed_in("rev1")
    resp = await r1.post(
        f"/api/v1/admin/recordings/{rec}/delete",
        json={"reason": "tidy"},
        headers={"X-CSRF-Token": csrf},
    )
    assert resp.status == 403
    adm, acsrf = await signed_in("adm")
    resp = await adm.post(
        f"/api/v1/admin/recordings/{rec}/delete", json={}, headers={"X-CSRF-Token": acsrf}
    )
    assert resp.status == 422
    resp = await adm.post(
        f"/api/v1/admin/recordings/{rec}/delete",
        json={"reason": "subject access request #44"},
        headers={"X-CSRF-Token": acsrf},
    )
    body = await resp.json()
    assert body["state"] == "deleted"
    assert body["deleted_reason"] == "admin: subject access request #44"
    assert await audit_count(app, "recording.delete", rec) == 1
    resp = await r1.post(f"/api/v1/review/recordings/{rec}/replay", headers={"X-CSRF-Token": csrf})
    assert resp.status == 410


async def test_policy_changes_are_audited(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application
) -> None:
    adm, csrf = await signed_in("adm")
    r1, rcsrf = await signed_in("rev1")
    resp = await r1.put(
        "/api/v1/admin/policy", json={"review_sample_rate": 0.5}, headers={"X-CSRF-Token": rcsrf}
    )
    assert resp.status == 403
    resp = await adm.put(
        "/api/v1/admin/policy",
        json={"review_sample_rate": 0.5, "retention_days": 30},
        headers={"X-CSRF-Token": csrf},
    )
    assert (await resp.json())["review_sample_rate"] == 0.5
    assert await audit_count(app, "settings.change", "review_sample_rate") == 1
    assert await audit_count(app, "settings.change", "retention_days") == 0  # unchanged value
    resp = await adm.put(
        "/api/v1/admin/policy", json={"review_sample_rate": 2}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 422


async def test_audit_log_is_append_only(
    app: web.Application, review_setup: dict[str, Any], signed_in: Any
) -> None:
    r1, csrf = await signed_in("rev1")
    await r1.post("/api/v1/review/calls/call1/claim", headers={"X-CSRF-Token": csrf})
    async with app[DB]() as session:
        with pytest.raises(Exception, match="append-only"):
            await session.execute(text("UPDATE audit_log SET actor_id = 'x'"))
        await session.rollback()
        with pytest.raises(Exception, match="append-only"):
            await session.execute(text("DELETE FROM audit_log"))


async def test_concurrent_verdicts_record_one_violation(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application
) -> None:
    reviewer = await signed_in("rev1")
    await concurrent_verdicts_make_one_violation(app, reviewer, "call1", review_setup["seller"])


async def test_concurrent_claims_answer_409_never_500(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application
) -> None:
    reviewers = [await signed_in("rev1"), await signed_in("rev2")]
    await concurrent_claims_answer_409_never_500(app, reviewers, "call1")


async def test_the_queue_shows_a_mandatory_call_behind_500_sampled_ones(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application
) -> None:
    # 500 sampled calls older than one mandatory call: the limit must not hide it.
    old = utcnow() - timedelta(days=10)
    async with app[DB]() as session, session.begin():
        for i in range(500):
            session.add(
                Call(
                    id=f"sampled{i:03}",
                    thread_id=review_setup["thread"],
                    seller_id=review_setup["seller"],
                    buyer_id=review_setup["buyer"],
                    state="ended",
                    created_at=old + timedelta(seconds=i),
                    review_required=True,
                    sampled=True,
                    mandatory_reasons=[],
                )
            )
    await seed_reviewable_call(
        app,
        call_id="reported",
        thread_id=review_setup["thread"],
        seller_id=review_setup["seller"],
        buyer_id=review_setup["buyer"],
        created_at=utcnow() - timedelta(days=2),
        sampled=False,
        mandatory=["reported_by_participant"],
    )
    c, _ = await signed_in("rev1")
    queue = await (await c.get("/api/v1/review/queue?kind=mandatory")).json()
    assert [i["call_id"] for i in queue["calls"]] == ["reported"]
    assert queue["calls"][0]["mandatory_reasons"] == ["reported_by_participant"]
    sampled = await (await c.get("/api/v1/review/queue?kind=sampled")).json()
    assert len(sampled["calls"]) == 500
    assert "reported" not in {i["call_id"] for i in sampled["calls"]}


async def test_the_queue_loads_only_the_users_it_shows(
    signed_in: Any, review_setup: dict[str, Any], app: web.Application, host: Host
) -> None:
    for i in range(30):
        await host.user(f"bystander{i}", "buyer")
    c, _ = await signed_in("rev1")
    engine = app[DB].kw["bind"].sync_engine
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        queue = await (await c.get("/api/v1/review/queue")).json()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    item = queue["calls"][0]
    assert (item["seller"]["id"], item["buyer"]["id"]) == (
        review_setup["seller"],
        review_setup["buyer"],
    )
    # Every read of the users table is narrowed (the session's user, or joined to calls);
    # none loads the whole table.
    reads = [s for s in statements if re.search(r"\bFROM users\b", s)]
    assert reads, statements
    for statement in reads:
        assert " WHERE " in statement or " JOIN " in statement, statement
