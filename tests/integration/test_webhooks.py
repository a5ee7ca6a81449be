"""Webhooks to the host marketplace, received by a real HTTP server on loopback that
checks every signature: a real call through the bridge, a review verdict, an admin's
lift and release, retries after 5xx answers with the same id, and an operator's re-drive
of an event that ran out of retries.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from server.appkeys import DB
from server.clock import utcnow
from server.db.migrate import upgrade_to_head_async
from server.db.models import Recording, WebhookEvent
from server.db.session import make_engine, make_session_factory
from server.settings import Settings
from server.webhooks.outbox import emit, enable_webhooks
from server.webhooks.sender import WebhookSender
from tests.support.review_data import seed_reviewable_call
from tests.support.rtc_client import CallHarness, Participant
from tests.support.service import Host, make_settings
from tests.support.webhook_receiver import SECRET, Delivery, WebhookReceiver, running_receiver

pytestmark = [pytest.mark.integration]

SignedIn = Callable[[str], Awaitable[tuple[TestClient[Any, Any], str]]]


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with running_receiver() as r:
        yield r


@pytest.fixture
def settings(tmp_path: Path, receiver: WebhookReceiver) -> Settings:
    return make_settings(
        tmp_path,
        review_sample_rate=1.0,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        # Fast retries and polls so the test sees several attempts; the policy is the real one.
        webhook_retry_base_seconds=0.05,
        webhook_poll_seconds=0.05,
    )


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    """The sender writes an outcome just after the receiver answered: wait for it."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def outbox_row(app: web.Application, event_id: str) -> WebhookEvent:
    async with app[DB]() as session:
        row = await session.get(WebhookEvent, event_id)
    assert row is not None
    return row


def assert_well_formed(delivery: Delivery) -> None:
    assert delivery.signature_ok, delivery.body
    assert set(delivery.event) == {"id", "type", "created_at", "data"}
    assert delivery.id.startswith("evt_")


async def declined_call(calls: CallHarness, suffix: str) -> str:
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair(suffix)
    seller: Participant = await calls.participant(seller_id)
    buyer: Participant = await calls.participant(buyer_id)
    call_id = await calls.ring(seller, buyer, thread_id)
    await buyer.ws.ok("decline_call", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    return call_id


async def test_a_call_a_verdict_and_an_admin_lift_reach_the_host_signed(
    calls: CallHarness, receiver: WebhookReceiver, signed_in: SignedIn, host: Host
) -> None:
    call_id, seller, buyer = await calls.connected_call()
    seller_id, buyer_id = seller.ws.user_id, buyer.ws.user_id
    await calls.progress.wait_for(
        lambda: all(len(p.media.received["video"]) >= 30 for p in (seller, buyer)),
        "1 s of video both ways",
    )
    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)

    await receiver.wait_for(
        lambda ds: (
            len([d for d in ds if d.type == "recording.stored"]) == 2
            and any(d.type == "call.ended" for d in ds)
        ),
        "call.started, call.ended and two recording.stored",
    )
    for delivery in receiver.deliveries:
        assert_well_formed(delivery)
    (started,) = receiver.of_type("call.started")
    (ended,) = receiver.of_type("call.ended")
    parties = {"call_id": call_id, "seller_id": seller_id, "buyer_id": buyer_id}
    assert parties.items() <= started.event["data"].items()
    assert parties.items() <= ended.event["data"].items()
    assert ended.event["data"]["end_reason"] == "hung_up"
    assert ended.event["data"]["duration_seconds"] > 0
    async with calls.db() as session:
        recordings = {
            r.id: r
            for r in (
                await session.scalars(select(Recording).where(Recording.call_id == call_id))
            ).all()
        }
    stored = {
        d.event["data"]["recording_id"]: d.event["data"]
        for d in receiver.of_type("recording.stored")
    }
    assert set(stored) == set(recordings)
    for recording_id, data in stored.items():
        row = recordings[recording_id]
        assert data["call_id"] == call_id
        assert data["user_id"] == row.participant_id
        assert data["sha256"] == row.sha256 and data["size_bytes"] == row.size
    assert {d["user_id"] for d in stored.values()} == {seller_id, buyer_id}

    # A reviewer finds the buyer broke the rules: the verdict and the restriction.
    await host.user("rev1", "reviewer")
    reviewer, rcsrf = await signed_in("rev1")
    resp = await reviewer.post(
        f"/api/v1/review/calls/{call_id}/claim", headers={"X-CSRF-Token": rcsrf}
    )
    assert resp.status == 200, await resp.text()
    resp = await reviewer.post(
        f"/api/v1/review/calls/{call_id}/verdict",
        json={"verdict": "off_platform_contact", "subject_user_id": buyer_id},
        headers={"X-CSRF-Token": rcsrf},
    )
    assert resp.status == 200, await resp.text()
    await receiver.wait_for(
        lambda ds: any(d.type == "user.restricted" for d in ds), "review.verdict, user.restricted"
    )
    (verdict,) = receiver.of_type("review.verdict")
    assert verdict.event["data"] == {
        "call_id": call_id,
        "verdict": "off_platform_contact",
        "violation": True,
        "user_id": buyer_id,
        "reviewer_id": "rev1",
    }
    (restricted,) = receiver.of_type("user.restricted")
    assert restricted.event["data"]["user_id"] == buyer_id
    assert restricted.event["data"]["call_id"] == call_id

    # An admin lifts the restriction, then releases the hold on the recordings.
    await host.user("adm1", "admin")
    admin, acsrf = await signed_in("adm1")
    seller_client = await calls.client(seller_id)
    thread_id = (await calls.call_row(call_id)).thread_id

    async def reasons() -> list[str]:
        resp = await seller_client.get(f"/api/v1/threads/{thread_id}/call-eligibility")
        return [r["code"] for r in (await resp.json())["reasons"]]

    assert "account_restricted" in await reasons()
    resp = await admin.get(f"/api/v1/admin/users/{buyer_id}/restriction")
    before = await resp.json()
    assert before["restricted"] is True and before["host_restricted"] is False
    (violation,) = before["violations"]
    assert violation["call_id"] == call_id and violation["recordings_held"] == 2

    resp = await admin.post(
        f"/api/v1/admin/users/{buyer_id}/lift-restriction",
        json={"reason": "appeal upheld: the number was the platform's support line"},
        headers={"X-CSRF-Token": acsrf},
    )
    assert resp.status == 200, await resp.text()
    after = await resp.json()
    assert after["restricted"] is False
    assert after["violations"][0]["released_at"] is not None
    assert after["violations"][0]["recordings_held"] == 2  # lifting keeps the evidence
    assert "account_restricted" not in await reasons()
    await receiver.wait_for(
        lambda ds: any(d.type == "user.unrestricted" for d in ds), "user.unrestricted"
    )
    (unrestricted,) = receiver.of_type("user.unrestricted")
    assert unrestricted.event["data"] == {
        "user_id": buyer_id,
        "call_ids": [call_id],
        "host_restricted": False,
        "source": "admin",
    }

    resp = await admin.post(
        f"/api/v1/admin/violations/{violation['id']}/release-hold",
        json={"reason": "appeal closed"},
        headers={"X-CSRF-Token": acsrf},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["recordings_held"] == 0
    async with calls.db() as session:
        holds = (
            await session.scalars(select(Recording.hold).where(Recording.call_id == call_id))
        ).all()
    assert sorted(holds) == ["released", "released"]

    for delivery in receiver.deliveries:
        assert_well_formed(delivery)
    assert len({d.id for d in receiver.deliveries}) == len(receiver.deliveries)


async def test_admin_lift_and_release_are_audited_and_refuse_what_does_not_apply(
    app: web.Application, host: Host, signed_in: SignedIn, receiver: WebhookReceiver
) -> None:
    await host.user("s1", "seller", business_program="member")
    await host.user("b1", "buyer", vid=True)
    await host.user("b2", "buyer", vid=True, restricted=True)  # the host's own flag
    await host.thread("t1", "s1", "b1")
    await host.user("rev1", "reviewer")
    await host.user("adm1", "admin")
    await seed_reviewable_call(app, call_id="c1", thread_id="t1", seller_id="s1", buyer_id="b1")
    reviewer, rcsrf = await signed_in("rev1")
    admin, acsrf = await signed_in("adm1")
    headers = {"X-CSRF-Token": acsrf}

    # Only admins; a reviewer is refused and changes nothing.
    resp = await reviewer.post(
        "/api/v1/admin/users/b1/lift-restriction",
        json={"reason": "not mine to lift"},
        headers={"X-CSRF-Token": rcsrf},
    )
    assert resp.status == 403
    # Nothing to lift yet; the host's flag is the host's; unknown people and violations.
    resp = await admin.post(
        "/api/v1/admin/users/b1/lift-restriction", json={"reason": "nothing"}, headers=headers
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "not_restricted")
    resp = await admin.post(
        "/api/v1/admin/users/b2/lift-restriction", json={"reason": "host's"}, headers=headers
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "restricted_by_host")
    resp = await admin.post(
        "/api/v1/admin/users/nobody/lift-restriction", json={"reason": "who"}, headers=headers
    )
    assert resp.status == 404
    resp = await admin.post(
        "/api/v1/admin/violations/999/release-hold", json={"reason": "none"}, headers=headers
    )
    assert resp.status == 404
    resp = await admin.post(
        "/api/v1/admin/users/b1/lift-restriction", json={"reason": ""}, headers=headers
    )
    assert resp.status == 422  # a reason is required

    await reviewer.post("/api/v1/review/calls/c1/claim", headers={"X-CSRF-Token": rcsrf})
    resp = await reviewer.post(
        "/api/v1/review/calls/c1/verdict",
        json={"verdict": "abusive", "subject_user_id": "b1"},
        headers={"X-CSRF-Token": rcsrf},
    )
    assert resp.status == 200, await resp.text()
    violation_id = (await (await admin.get("/api/v1/admin/users/b1/restriction")).json())[
        "violations"
    ][0]["id"]

    resp = await admin.post(
        f"/api/v1/admin/violations/{violation_id}/release-hold",
        json={"reason": "evidence exported to legal"},
        headers=headers,
    )
    assert resp.status == 200, await resp.text()
    resp = await admin.post(
        f"/api/v1/admin/violations/{violation_id}/release-hold",
        json={"reason": "again"},
        headers=headers,
    )
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "not_held")
    # Releasing the evidence did not lift the restriction.
    assert (await (await admin.get("/api/v1/admin/users/b1/restriction")).json())["restricted"]
    resp = await admin.post(
        "/api/v1/admin/users/b1/lift-restriction", json={"reason": "first offence"}, headers=headers
    )
    assert resp.status == 200

    audit = (await (await admin.get("/api/v1/review/audit")).json())["entries"]
    by_action = {e["action"]: e for e in audit}
    lift = by_action["user.lift_restriction"]
    assert (lift["actor_id"], lift["target_id"]) == ("adm1", "b1")
    assert lift["details"]["reason"] == "first offence"
    assert lift["details"]["violation_ids"] == [violation_id]
    release = by_action["violation.release_hold"]
    assert (release["actor_id"], release["target_id"]) == ("adm1", str(violation_id))
    assert release["details"]["reason"] == "evidence exported to legal"
    assert len(release["details"]["recording_ids"]) == 2
    assert [e["action"] for e in audit].count("user.lift_restriction") == 1  # refusals: none

    await receiver.wait_for(
        lambda ds: any(d.type == "user.unrestricted" for d in ds), "user.unrestricted"
    )
    assert [d.type for d in receiver.deliveries].count("user.unrestricted") == 1


async def test_5xx_answers_are_retried_with_the_same_id_and_body(
    calls: CallHarness, receiver: WebhookReceiver
) -> None:
    receiver.script.extend([500, 503, 502])
    call_id = await declined_call(calls, "-retry")
    deliveries = await receiver.wait_for(
        lambda ds: any(d.type == "call.ended" and d.answered == 200 for d in ds),
        "call.ended accepted after three 5xx answers",
    )
    attempts = [d for d in deliveries if d.type == "call.ended"]
    assert [d.answered for d in attempts] == [500, 503, 502, 200]
    assert len({d.id for d in attempts}) == 1
    assert len({d.body for d in attempts}) == 1  # the same bytes every time
    assert all(d.signature_ok for d in attempts)
    assert attempts[0].event["data"]["call_id"] == call_id
    assert attempts[0].event["data"]["end_reason"] == "declined"
    assert attempts[0].event["data"]["started_at"] is None  # never became active
    assert not receiver.of_type("call.started")

    event_id = attempts[0].id

    async def delivered() -> bool:
        return (await outbox_row(calls.app, event_id)).state == "delivered"

    await eventually(delivered, "the outbox row marked delivered")
    row = await outbox_row(calls.app, event_id)
    assert (row.attempts, row.last_status, row.last_error) == (4, 200, None)


async def test_an_event_out_of_retries_is_listed_and_redriven_by_an_operator(
    calls: CallHarness, receiver: WebhookReceiver, signed_in: SignedIn, host: Host
) -> None:
    receiver.default_status = 500
    await declined_call(calls, "-redrive")
    (first,) = (await receiver.wait_for(lambda ds: len(ds) >= 1, "a first, refused attempt"))[:1]
    event_id = first.id
    # A day of refusals, without waiting a day: the event's retry window started 25 h ago.
    async with calls.app[DB]() as session, session.begin():
        await session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(window_started_at=utcnow() - timedelta(hours=25))
        )

    async def failed() -> bool:
        return (await outbox_row(calls.app, event_id)).state == "failed"

    await eventually(failed, "the event failed after its retry window")
    await host.user("adm1", "admin")
    await host.user("rev1", "reviewer")
    admin, acsrf = await signed_in("adm1")
    reviewer, _ = await signed_in("rev1")
    assert (await reviewer.get("/api/v1/admin/webhooks/events")).status == 403

    listed = (await (await admin.get("/api/v1/admin/webhooks/events?state=failed")).json())[
        "events"
    ]
    assert [e["id"] for e in listed] == [event_id]
    assert listed[0]["type"] == "call.ended"
    assert listed[0]["last_status"] == 500 and "gave up after" in listed[0]["last_error"]
    attempts_before = listed[0]["attempts"]
    assert attempts_before >= 2

    receiver.default_status = 200
    resp = await admin.post(
        f"/api/v1/admin/webhooks/events/{event_id}/redrive",
        json={"reason": "host endpoint fixed"},
        headers={"X-CSRF-Token": acsrf},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "pending"
    await receiver.wait_for(
        lambda ds: any(d.id == event_id and d.answered == 200 for d in ds), "the re-driven event"
    )
    same = [d for d in receiver.deliveries if d.id == event_id]
    assert len({d.body for d in same}) == 1 and all(d.signature_ok for d in same)

    async def delivered() -> bool:
        return (await outbox_row(calls.app, event_id)).state == "delivered"

    await eventually(delivered, "the re-driven event marked delivered")
    assert (await outbox_row(calls.app, event_id)).attempts == attempts_before + 1
    assert (await (await admin.get("/api/v1/admin/webhooks/events")).json())["events"] == []
    resp = await admin.post(
        "/api/v1/admin/webhooks/redrive-failed",
        json={"reason": "nothing left"},
        headers={"X-CSRF-Token": acsrf},
    )
    assert (await resp.json()) == {"redriven": []}
    audit = (await (await admin.get("/api/v1/review/audit?action=webhook.redrive")).json())[
        "entries"
    ]
    assert len(audit) == 1
    assert audit[0]["target_id"] == event_id
    assert audit[0]["details"] == {"reason": "host endpoint fixed", "previous_state": "failed"}
    assert json.loads(same[0].body)["id"] == event_id


async def test_old_delivered_and_failed_events_are_pruned(settings: Settings) -> None:
    # A sender that is not started: its own hourly prune cannot race this one.
    settings.data_dir.mkdir(parents=True)
    await upgrade_to_head_async(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    db = make_session_factory(engine)
    enable_webhooks(db)
    now = utcnow()
    ages = {
        "delivered-8d": ("delivered", timedelta(days=8)),
        "delivered-6d": ("delivered", timedelta(days=6)),
        "failed-31d": ("failed", timedelta(days=31)),
        "failed-29d": ("failed", timedelta(days=29)),
        "pending-40d": ("pending", timedelta(days=40)),
    }
    try:
        async with db() as session, session.begin():
            for name, (state, age) in ages.items():
                row = emit(session, "call.ended", {"call_id": name}, now=now - age)
                assert row is not None
                row.id = name
                row.state = state
                row.last_attempt_at = now - age
                row.delivered_at = now - age if state == "delivered" else None
        assert await WebhookSender(settings, db).prune(now) == 2
        async with db() as session:
            left = set((await session.scalars(select(WebhookEvent.id))).all())
    finally:
        await engine.dispose()
    assert left == {"delivered-6d", "failed-29d", "pending-40d"}
