"""The host marketplace's side (DESIGN.md section 8): idempotent upserts keyed by its ids.

``integration_key_middleware`` checks ``Authorization: Bearer <INBOXCALL_INTEGRATION_API_KEY>``
in constant time before any route here parses its input.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r401, r404, r409, r422
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.openapi import Handler, api_handler
from server.api.schemas import (
    BlockOut,
    ErrorBody,
    IntegrationMessageIn,
    LoginTokenOut,
    MessageOut,
    ThreadOut,
    ThreadUpsert,
    UserOut,
    UserUpsert,
    ViolationList,
    ViolationOut,
)
from server.appkeys import DB, ELIGIBILITY_WATCH, SETTINGS
from server.auth import check_integration_key, issue_login_token
from server.db.models import Block, Thread, User, Violation
from server.errors import ApiError, not_found
from server.messages import add_message
from server.serialize import message_out, thread_out, user_out

HostIdPath = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]


async def _user_with_role(session: AsyncSession, user_id: str, role: str, what: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise ApiError(422, "unknown_user", f"Unknown {what} {user_id!r}; push the user first.")
    if user.role != role:
        raise ApiError(422, "wrong_role", f"User {user_id!r} is not a {role}.")
    return user


@api_handler
async def put_user(
    request: web.Request, user_id: HostIdPath, /, body: UserUpsert
) -> r200[UserOut] | r201[UserOut] | r401[ErrorBody] | r409[ErrorBody] | r422[ErrorBody]:
    """Create or update a user (idempotent). Role changes of an existing user are refused.

    Tags: integration
    """
    async with request.app[DB]() as session, session.begin():
        user = await session.get(User, user_id)
        created = user is None
        if user is None:
            user = User(id=user_id, role=body.role)
            session.add(user)
        elif user.role != body.role:
            raise ApiError(409, "role_change", "A user's role cannot change; use a new id.")
        user.display_name = body.display_name
        user.business_program = body.business_program if body.role == "seller" else "none"
        user.vid = body.vid if body.role == "buyer" else False
        user.restricted = body.restricted
        await session.flush()
        out = user_out(user)
    await request.app[ELIGIBILITY_WATCH].changed(user_ids=[user_id])
    return web.json_response(out.model_dump(mode="json"), status=201 if created else 200)


@api_handler
async def put_thread(
    request: web.Request, thread_id: HostIdPath, /, body: ThreadUpsert
) -> r200[ThreadOut] | r201[ThreadOut] | r401[ErrorBody] | r409[ErrorBody] | r422[ErrorBody]:
    """Create or update an inbox thread (idempotent); its two parties cannot change.

    Tags: integration
    """
    async with request.app[DB]() as session, session.begin():
        await _user_with_role(session, body.seller_id, "seller", "seller")
        await _user_with_role(session, body.buyer_id, "buyer", "buyer")
        thread = await session.get(Thread, thread_id)
        created = thread is None
        if thread is None:
            thread = Thread(id=thread_id, seller_id=body.seller_id, buyer_id=body.buyer_id)
            session.add(thread)
        elif (thread.seller_id, thread.buyer_id) != (body.seller_id, body.buyer_id):
            raise ApiError(409, "parties_change", "A thread's seller and buyer cannot change.")
        thread.subject = body.subject
        thread.initiated_by = body.initiated_by
        thread.state = body.state
        thread.order_placed = body.order_placed
        thread.last_buyer_activity_at = body.last_buyer_activity_at
        await session.flush()
        out = thread_out(thread)
    await request.app[ELIGIBILITY_WATCH].changed(thread_ids=[thread_id])
    return web.json_response(out.model_dump(mode="json"), status=201 if created else 200)


@api_handler
async def post_message(
    request: web.Request, thread_id: HostIdPath, /, body: IntegrationMessageIn
) -> r201[MessageOut] | r401[ErrorBody] | r404[ErrorBody] | r422[ErrorBody]:
    """Store a message written on the host's side; answers it with its `flags`.

    Tags: integration
    """
    async with request.app[DB]() as session, session.begin():
        thread = await session.get(Thread, thread_id)
        if thread is None:
            raise not_found("thread")
        if body.sender_id not in (thread.seller_id, thread.buyer_id):
            raise ApiError(422, "not_a_party", "The sender is not one of the thread's parties.")
        message = add_message(session, thread, sender_id=body.sender_id, text=body.text)
        await session.flush()
        out = message_out(message)
    return web.json_response(out.model_dump(mode="json"), status=201)


async def _set_block(
    request: web.Request, buyer_id: str, seller_id: str, blocked: bool
) -> web.Response:
    async with request.app[DB]() as session, session.begin():
        await _user_with_role(session, buyer_id, "buyer", "buyer")
        await _user_with_role(session, seller_id, "seller", "seller")
        existing = await session.get(Block, (buyer_id, seller_id))
        if blocked and existing is None:
            session.add(Block(buyer_id=buyer_id, seller_id=seller_id))
        elif not blocked and existing is not None:
            await session.delete(existing)
    await request.app[ELIGIBILITY_WATCH].changed(user_ids=[buyer_id, seller_id])
    out = BlockOut(buyer_id=buyer_id, seller_id=seller_id, blocked=blocked)
    return web.json_response(out.model_dump(mode="json"))


@api_handler
async def put_block(
    request: web.Request, buyer_id: HostIdPath, seller_id: HostIdPath, /
) -> r200[BlockOut] | r401[ErrorBody] | r422[ErrorBody]:
    """The buyer blocks the seller (idempotent).

    Tags: integration
    """
    return await _set_block(request, buyer_id, seller_id, True)


@api_handler
async def delete_block(
    request: web.Request, buyer_id: HostIdPath, seller_id: HostIdPath, /
) -> r200[BlockOut] | r401[ErrorBody] | r422[ErrorBody]:
    """The buyer unblocks the seller (idempotent).

    Tags: integration
    """
    return await _set_block(request, buyer_id, seller_id, False)


@api_handler
async def post_login_token(
    request: web.Request, user_id: HostIdPath, /
) -> r201[LoginTokenOut] | r401[ErrorBody] | r404[ErrorBody]:
    """A short-lived, single-use sign-in link for this user.

    Tags: integration
    """
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session, session.begin():
        if await session.get(User, user_id) is None:
            raise not_found("user")
        token = await issue_login_token(session, user_id, settings.login_token_ttl_seconds)
    base = settings.base_url(f"{request.scheme}://{request.host}")
    out = LoginTokenOut(token=token, login_url=f"{base}/login?token={token}")
    return web.json_response(out.model_dump(mode="json"), status=201)


@api_handler
async def get_violations(
    request: web.Request, user_id: HostIdPath, /
) -> r200[ViolationList] | r401[ErrorBody] | r404[ErrorBody]:
    """Violation verdicts recorded against this user by compliance review.

    Tags: integration
    """
    async with request.app[DB]() as session:
        if await session.get(User, user_id) is None:
            raise not_found("user")
        rows = (
            await session.scalars(
                select(Violation).where(Violation.user_id == user_id).order_by(Violation.id)
            )
        ).all()
    out = ViolationList(
        user_id=user_id,
        violations=[
            ViolationOut(
                call_id=v.call_id,
                verdict=v.verdict,
                created_at=v.created_at,
                released_at=v.released_at,
            )
            for v in rows
        ],
    )
    return web.json_response(out.model_dump(mode="json"))


PREFIX = "/api/v1/integration/"


@web.middleware
async def integration_key_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PREFIX):
        check_integration_key(request)
    return await handler(request)


def add_routes(app: web.Application) -> None:
    prefix = "/api/v1/integration"
    app.router.add_put(prefix + "/users/{user_id}", put_user)
    app.router.add_put(prefix + "/threads/{thread_id}", put_thread)
    app.router.add_post(prefix + "/threads/{thread_id}/messages", post_message)
    app.router.add_put(prefix + "/blocks/{buyer_id}/{seller_id}", put_block)
    app.router.add_delete(prefix + "/blocks/{buyer_id}/{seller_id}", delete_block)
    app.router.add_post(prefix + "/users/{user_id}/login-token", post_login_token)
    app.router.add_get(prefix + "/users/{user_id}/violations", get_violations)
