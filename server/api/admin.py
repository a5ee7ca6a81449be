"""Admin only: restrictions and violation holds, and the webhook outbox.

* ``GET /api/v1/admin/users/{user_id}/restriction``: whether and why an account is
  restricted, with its violations (their ids, and how many recordings each still holds).
* ``POST .../users/{user_id}/lift-restriction`` ``{"reason"}``: lifts the violations'
  restriction (``user.unrestricted`` webhook); the recordings stay held.
* ``POST /api/v1/admin/violations/{violation_id}/release-hold`` ``{"reason"}``: releases the
  hold on the call's recordings; retention counts from the release.
* ``GET /api/v1/admin/webhooks/events?state=failed|pending|delivered|undelivered``: the
  outbox, newest first, with each event's attempts and last error.
* ``POST .../webhooks/events/{event_id}/redrive`` and ``POST .../webhooks/redrive-failed``
  ``{"reason"}``: due again now with a fresh retry window, the same event id.

Every change is audited with its reason in the change's transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r401, r403, r404, r409, r422
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.openapi import api_handler
from server.api.schemas import ErrorBody, HostId, ReasonIn
from server.appkeys import DB, WEBHOOK_SENDER
from server.audit import audit
from server.auth import current_user, require_role
from server.clock import utcnow
from server.db.models import User, Violation, WebhookEvent
from server.errors import ApiError, not_found
from server.restrictions import (
    RestrictionError,
    RestrictionFacts,
    ViolationFacts,
    lift_restriction,
    release_violation_hold,
    restriction_facts,
)
from server.webhooks.outbox import DELIVERED, FAILED, PENDING, redrive

EventId = Annotated[str, Field(min_length=1, max_length=40)]
MAX_BULK_REDRIVE = 1000


class AdminViolationOut(BaseModel):
    id: int
    call_id: str
    verdict: str
    created_at: datetime
    # When an admin lifted the restriction this violation put on the person.
    released_at: datetime | None
    recordings_held: int


class RestrictionOut(BaseModel):
    user_id: str
    restricted: bool
    host_restricted: bool
    violations: list[AdminViolationOut]


class WebhookEventOut(BaseModel):
    id: str
    type: str
    state: Literal["pending", "delivered", "failed"]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


class WebhookEventList(BaseModel):
    events: list[WebhookEventOut]


class RedriveOut(BaseModel):
    redriven: list[str]


async def _admin(request: web.Request, session: AsyncSession) -> User:
    user = await current_user(request, session)
    require_role(user, "admin")
    return user


def _violation_out(facts: ViolationFacts) -> AdminViolationOut:
    v = facts.violation
    return AdminViolationOut(
        id=v.id,
        call_id=v.call_id,
        verdict=v.verdict,
        created_at=v.created_at,
        released_at=v.released_at,
        recordings_held=facts.recordings_held,
    )


def _restriction_out(facts: RestrictionFacts) -> RestrictionOut:
    return RestrictionOut(
        user_id=facts.user_id,
        restricted=facts.restricted,
        host_restricted=facts.host_restricted,
        violations=[_violation_out(v) for v in facts.violations],
    )


async def _admin_change(
    request: web.Request, change: Callable[[AsyncSession, User], Awaitable[BaseModel]]
) -> web.Response:
    """An admin's change in one transaction (its audit row included); a change that does
    not apply answers 409 with the domain's code."""
    async with request.app[DB]() as session, session.begin():
        admin = await _admin(request, session)
        try:
            out = await change(session, admin)
        except RestrictionError as exc:
            raise ApiError(409, exc.code, exc.message) from None
    return web.json_response(out.model_dump(mode="json"))


@api_handler
async def get_restriction(
    request: web.Request, user_id: HostId, /
) -> r200[RestrictionOut] | r401[ErrorBody] | r403[ErrorBody] | r404[ErrorBody]:
    """Whether an account is restricted: the host's flag and the violations recorded here.

    Tags: admin
    """
    async with request.app[DB]() as session:
        await _admin(request, session)
        user = await session.get(User, user_id)
        if user is None:
            raise not_found("user")
        facts = await restriction_facts(session, user)
    return web.json_response(_restriction_out(facts).model_dump(mode="json"))


@api_handler
async def post_lift_restriction(
    request: web.Request, user_id: HostId, /, body: ReasonIn
) -> (
    r200[RestrictionOut]
    | r401[ErrorBody]
    | r403[ErrorBody]
    | r404[ErrorBody]
    | r409[ErrorBody]
    | r422[ErrorBody]
):
    """Lift the restriction that violation verdicts put on an account, giving a reason.

    The recordings stay held (release each violation's hold separately); the host's own
    ``restricted`` flag is the host's to lift. Sends ``user.unrestricted``.

    Tags: admin
    """

    async def lift(session: AsyncSession, admin: User) -> BaseModel:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            raise not_found("user")
        facts = await lift_restriction(
            session, user, actor_id=admin.id, reason=body.reason, now=utcnow()
        )
        return _restriction_out(facts)

    return await _admin_change(request, lift)


@api_handler
async def post_release_hold(
    request: web.Request, violation_id: Annotated[int, Field(ge=1, le=2**62)], /, body: ReasonIn
) -> (
    r200[AdminViolationOut]
    | r401[ErrorBody]
    | r403[ErrorBody]
    | r404[ErrorBody]
    | r409[ErrorBody]
    | r422[ErrorBody]
):
    """Release the hold a violation put on its call's recordings, giving a reason.

    Tags: admin
    """

    async def release(session: AsyncSession, admin: User) -> BaseModel:
        violation = await session.get(Violation, violation_id, with_for_update=True)
        if violation is None:
            raise not_found("violation")
        facts = await release_violation_hold(
            session, violation, actor_id=admin.id, reason=body.reason, now=utcnow()
        )
        return _violation_out(facts)

    return await _admin_change(request, release)


def _event_out(row: WebhookEvent) -> WebhookEventOut:
    return WebhookEventOut(
        id=row.id,
        type=row.type,
        state=PENDING if row.state == PENDING else DELIVERED if row.state == DELIVERED else FAILED,
        created_at=row.created_at,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.state == PENDING else None,
        last_attempt_at=row.last_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


@api_handler
async def get_webhook_events(
    request: web.Request,
    state: Literal["undelivered", "pending", "failed", "delivered", "all"] = "undelivered",
    limit: Annotated[int, Field(ge=1, le=1000)] = 200,
) -> r200[WebhookEventList] | r401[ErrorBody] | r403[ErrorBody] | r422[ErrorBody]:
    """Webhook events in the outbox, newest first (``undelivered``: pending and failed).

    Tags: admin
    """
    query = select(WebhookEvent).order_by(WebhookEvent.created_at.desc()).limit(limit)
    if state == "undelivered":
        query = query.where(WebhookEvent.state.in_((PENDING, FAILED)))
    elif state != "all":
        query = query.where(WebhookEvent.state == state)
    async with request.app[DB]() as session:
        await _admin(request, session)
        rows = (await session.scalars(query)).all()
    out = WebhookEventList(events=[_event_out(r) for r in rows])
    return web.json_response(out.model_dump(mode="json"))


def _wake_sender(request: web.Request) -> None:
    sender = request.app.get(WEBHOOK_SENDER)
    if sender is not None:
        sender.wake()


@api_handler
async def post_redrive_event(
    request: web.Request, event_id: EventId, /, body: ReasonIn
) -> r200[WebhookEventOut] | r401[ErrorBody] | r403[ErrorBody] | r404[ErrorBody] | r422[ErrorBody]:
    """Send one event again now, with a fresh retry window and the same id (also a
    delivered one, for a host that lost it).

    Tags: admin
    """
    async with request.app[DB]() as session, session.begin():
        admin = await _admin(request, session)
        row = await session.get(WebhookEvent, event_id, with_for_update=True)
        if row is None:
            raise not_found("webhook event")
        previous = row.state
        redrive([row], utcnow())
        audit(
            session,
            actor_id=admin.id,
            action="webhook.redrive",
            target_type="webhook_event",
            target_id=row.id,
            reason=body.reason,
            previous_state=previous,
        )
        out = _event_out(row)
    _wake_sender(request)
    return web.json_response(out.model_dump(mode="json"))


@api_handler
async def post_redrive_failed(
    request: web.Request, body: ReasonIn
) -> r200[RedriveOut] | r401[ErrorBody] | r403[ErrorBody] | r422[ErrorBody]:
    """Send every failed event again now (up to 1000 per request, oldest first).

    Tags: admin
    """
    async with request.app[DB]() as session, session.begin():
        admin = await _admin(request, session)
        rows = (
            await session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.state == FAILED)
                .order_by(WebhookEvent.created_at)
                .limit(MAX_BULK_REDRIVE)
                .with_for_update(skip_locked=True)
            )
        ).all()
        ids = redrive(rows, utcnow())
        if ids:
            audit(
                session,
                actor_id=admin.id,
                action="webhook.redrive",
                target_type="webhook_event",
                target_id="failed",
                reason=body.reason,
                event_ids=ids,
            )
    _wake_sender(request)
    return web.json_response(RedriveOut(redriven=ids).model_dump(mode="json"))


def add_routes(app: web.Application) -> None:
    prefix = "/api/v1/admin"
    app.router.add_get(prefix + "/users/{user_id}/restriction", get_restriction)
    app.router.add_post(prefix + "/users/{user_id}/lift-restriction", post_lift_restriction)
    app.router.add_post(prefix + "/violations/{violation_id}/release-hold", post_release_hold)
    app.router.add_get(prefix + "/webhooks/events", get_webhook_events)
    app.router.add_post(prefix + "/webhooks/events/{event_id}/redrive", post_redrive_event)
    app.router.add_post(prefix + "/webhooks/redrive-failed", post_redrive_failed)
