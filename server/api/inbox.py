"""The signed-in user's inbox: threads, messages, blocking, and call eligibility."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r401, r403, r404, r409, r422, r429
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.openapi import api_handler
from server.api.schemas import (
    BlockOut,
    EligibilityOut,
    ErrorBody,
    Me,
    MessageIn,
    MessageOut,
    ReadMarkOut,
    ThreadDetail,
    ThreadList,
)
from server.appkeys import DB, ELIGIBILITY_WATCH, SETTINGS
from server.auth import current_user, loaded_session, require_role
from server.clock import utcnow
from server.db.models import Block, Thread, User
from server.eligibility_snapshots import decide_start
from server.errors import ApiError, not_found
from server.inbox_view import inbox_threads, latest_messages, mark_read, messages_out
from server.messages import add_message
from server.serialize import eligibility_out, message_out, thread_summary, user_out
from server.write_throttle import WRITE_THROTTLES, check_write_rate

ThreadId = Annotated[str, Field(min_length=1, max_length=128)]


async def visible_thread(session: AsyncSession, user: User, thread_id: str) -> Thread:
    """The thread if this user is one of its two parties; 404 otherwise (no existence leak)."""
    thread = await session.get(Thread, thread_id)
    if thread is None or user.id not in (thread.seller_id, thread.buyer_id):
        raise not_found("thread")
    return thread


async def thread_parties(session: AsyncSession, thread: Thread) -> tuple[User, User, bool]:
    """The thread's seller, buyer, and whether the buyer blocked the seller."""
    seller = await session.get(User, thread.seller_id)
    buyer = await session.get(User, thread.buyer_id)
    assert seller is not None and buyer is not None  # foreign keys
    blocked = await session.get(Block, (thread.buyer_id, thread.seller_id)) is not None
    return seller, buyer, blocked


@api_handler
async def get_me(request: web.Request) -> r200[Me] | r401[ErrorBody]:
    """The signed-in user and the CSRF token pages send with state-changing requests.

    Tags: inbox
    """
    async with request.app[DB]() as session:
        user = await current_user(request, session)
    data = loaded_session(request)
    assert data is not None  # current_user loaded it
    return web.json_response(
        Me(user=user_out(user), csrf_token=data.csrf_token).model_dump(mode="json")
    )


@api_handler
async def list_threads(
    request: web.Request,
) -> r200[ThreadList] | r401[ErrorBody] | r403[ErrorBody]:
    """Threads of the signed-in seller or buyer, latest activity first, with each one's
    last message and unread count.

    Tags: inbox
    """
    async with request.app[DB]() as session:
        user = await current_user(request, session)
        require_role(user, "seller", "buyer")
        threads = await inbox_threads(session, user, request.app[SETTINGS])
    return web.json_response(ThreadList(threads=threads).model_dump(mode="json"))


@api_handler
async def get_thread(
    request: web.Request, thread_id: ThreadId, /
) -> r200[ThreadDetail] | r401[ErrorBody] | r404[ErrorBody]:
    """One thread with its latest messages (system messages included).

    Tags: inbox
    """
    async with request.app[DB]() as session:
        user = await current_user(request, session)
        thread = await visible_thread(session, user, thread_id)
        messages = await latest_messages(session, thread.id)
        summary = thread_summary(thread, *(await thread_parties(session, thread)))
        out = await messages_out(session, user, messages, request.app[SETTINGS])
    detail = ThreadDetail(**summary.model_dump(), messages=out)
    return web.json_response(detail.model_dump(mode="json"))


@api_handler
async def mark_thread_read(
    request: web.Request, thread_id: ThreadId, /
) -> r200[ReadMarkOut] | r401[ErrorBody] | r404[ErrorBody]:
    """The signed-in person has read this thread up to now (its unread count drops to 0).

    Tags: inbox
    """
    now = utcnow()
    async with request.app[DB]() as session, session.begin():
        user = await current_user(request, session)
        thread = await visible_thread(session, user, thread_id)
        await mark_read(session, thread.id, user.id, now)
    return web.json_response(ReadMarkOut(thread_id=thread.id, read_at=now).model_dump(mode="json"))


@api_handler
async def post_message(
    request: web.Request, thread_id: ThreadId, /, body: MessageIn
) -> (
    r200[MessageOut]
    | r401[ErrorBody]
    | r404[ErrorBody]
    | r409[ErrorBody]
    | r422[ErrorBody]
    | r429[ErrorBody]
):
    """Post a message; a contact-details hit is flagged `contact_details` and warned about.
    Too many messages too fast answer 429 `rate_limited` with `Retry-After`.

    Tags: inbox
    """
    max_chars = request.app[SETTINGS].message_max_chars
    if len(body.text) > max_chars:
        raise ApiError(422, "validation_error", f"Messages are at most {max_chars} characters.")
    async with request.app[DB]() as session, session.begin():
        user = await current_user(request, session)
        check_write_rate(request.app[WRITE_THROTTLES].messages, user.id, "messages")
        thread = await visible_thread(session, user, thread_id)
        if thread.state in ("closed", "blocked"):
            raise ApiError(409, "thread_closed", "This conversation no longer takes messages.")
        message = add_message(session, thread, sender_id=user.id, text=body.text)
        await session.flush()
        out = message_out(message)
    return web.json_response(out.model_dump(mode="json"))


@api_handler
async def call_eligibility(
    request: web.Request, thread_id: ThreadId, /
) -> r200[EligibilityOut] | r401[ErrorBody] | r404[ErrorBody]:
    """May the signed-in user start a video call in this thread? Every failing rule is listed.

    Tags: calls
    """
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        user = await current_user(request, session)
        thread = await visible_thread(session, user, thread_id)
        decision = await decide_start(
            session, caller=user, thread=thread, now=utcnow(), settings=settings
        )
    return web.json_response(eligibility_out(decision).model_dump(mode="json"))


async def _set_block(request: web.Request, thread_id: str, blocked: bool) -> web.Response:
    async with request.app[DB]() as session, session.begin():
        user = await current_user(request, session)
        thread = await visible_thread(session, user, thread_id)
        if user.id != thread.buyer_id:
            raise ApiError(403, "forbidden", "Only the buyer can block the seller.")
        existing = await session.get(Block, (thread.buyer_id, thread.seller_id))
        if blocked and existing is None:
            session.add(Block(buyer_id=thread.buyer_id, seller_id=thread.seller_id))
        elif not blocked and existing is not None:
            await session.delete(existing)
    await request.app[ELIGIBILITY_WATCH].changed(user_ids=[thread.buyer_id, thread.seller_id])
    out = BlockOut(buyer_id=thread.buyer_id, seller_id=thread.seller_id, blocked=blocked)
    return web.json_response(out.model_dump(mode="json"))


@api_handler
async def block_seller(
    request: web.Request, thread_id: ThreadId, /
) -> r200[BlockOut] | r401[ErrorBody] | r403[ErrorBody] | r404[ErrorBody]:
    """The buyer blocks this thread's seller (no more calls; a live call ends).

    Tags: inbox
    """
    return await _set_block(request, thread_id, True)


@api_handler
async def unblock_seller(
    request: web.Request, thread_id: ThreadId, /
) -> r200[BlockOut] | r401[ErrorBody] | r403[ErrorBody] | r404[ErrorBody]:
    """The buyer unblocks this thread's seller.

    Tags: inbox
    """
    return await _set_block(request, thread_id, False)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/me", get_me)
    app.router.add_get("/api/v1/threads", list_threads)
    app.router.add_get("/api/v1/threads/{thread_id}", get_thread)
    app.router.add_post("/api/v1/threads/{thread_id}/messages", post_message)
    app.router.add_post("/api/v1/threads/{thread_id}/read", mark_thread_read)
    app.router.add_get("/api/v1/threads/{thread_id}/call-eligibility", call_eligibility)
    app.router.add_put("/api/v1/threads/{thread_id}/block", block_seller)
    app.router.add_delete("/api/v1/threads/{thread_id}/block", unblock_seller)
