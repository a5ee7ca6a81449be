"""Calls over HTTP: the join link's JSON twin and reporting a call.

``GET /api/v1/calls/{call_id}?token=...`` answers what the join page shows: the call's
state, who calls about which thread. With a token, the token must be this call's join link
for the signed-in buyer (403 ``join_link_invalid`` otherwise; 410 ``join_link_expired``
once it expired, unless the call is over: an ended call answers 200 with its end reason).
Without a token, participants may read their own call; anyone else gets 404.
"""

from __future__ import annotations

import secrets
from typing import Annotated, cast

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r401, r403, r404, r410, r422, r429
from pydantic import BaseModel, Field

from server.api.openapi import api_handler
from server.api.schemas import (
    CallOut,
    CallParty,
    CallReportIn,
    CallReportOut,
    ErrorBody,
    LeaveCallIn,
    LeaveCallOut,
)
from server.appkeys import CALL_ROUTER, CALLS, DB, SETTINGS
from server.auth import current_user
from server.calls.errors import CallError, JoinLinkError
from server.calls.join_links import MAX_TOKEN_CHARS, check_join_token
from server.db.models import Call, User
from server.errors import ApiError, not_found
from server.write_throttle import WRITE_THROTTLES, check_write_rate
from server.ws.connection import Connection
from signaling.call_state import CallPhase
from signaling.ws_protocol import (
    CancelCallMessage,
    DeclineCallMessage,
    ErrorCode,
    ErrorMessage,
    HangUpMessage,
)

CallId = Annotated[str, Field(min_length=1, max_length=128)]
JoinToken = Annotated[str, Field(max_length=MAX_TOKEN_CHARS)]

RECORDING_NOTICE = (
    "This call is recorded and may be reviewed for compliance with the Terms of Service. "
    "Don't share phone numbers, e-mail or other contact details."
)


async def call_for_visitor(
    request: web.Request, call_id: str, token: str | None
) -> tuple[Call, User, User, bool]:
    """The call, its seller and buyer, and whether the visitor holds a live join link.

    Raises ``ApiError`` 401 (not signed in), 403/410 (join link), 404 (no such call).
    """
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        user = await current_user(request, session)
        fresh = False
        if token is not None:
            try:
                fresh = check_join_token(
                    settings.secret_key.get_secret_value(),
                    token,
                    call_id=call_id,
                    user_id=user.id,
                    ttl_seconds=settings.join_link_ttl_seconds,
                )
            except JoinLinkError as exc:
                raise ApiError(403, "join_link_invalid", exc.message) from None
        call = await session.get(Call, call_id)
        if call is None or user.id not in (call.seller_id, call.buyer_id):
            raise not_found("call")
        if token is not None and not fresh and call.state != CallPhase.ENDED.value:
            raise ApiError(410, "join_link_expired", "This join link has expired.")
        seller = await session.get(User, call.seller_id)
        buyer = await session.get(User, call.buyer_id)
        assert seller is not None and buyer is not None  # foreign keys
    return call, seller, buyer, fresh


def call_out(call: Call, seller: User, buyer: User) -> CallOut:
    return CallOut(
        id=call.id,
        thread_id=call.thread_id,
        state=call.state,
        end_reason=call.end_reason,
        ended_by=call.ended_by,
        end_detail=call.end_detail,
        caller=CallParty(id=seller.id, display_name=seller.display_name),
        buyer=CallParty(id=buyer.id, display_name=buyer.display_name),
        created_at=call.created_at,
        connected_at=call.connected_at,
        ended_at=call.ended_at,
        duration_seconds=call.duration_seconds,
        recording_notice=RECORDING_NOTICE,
    )


@api_handler
async def get_call(
    request: web.Request, call_id: CallId, /, token: JoinToken | None = None
) -> r200[CallOut] | r401[ErrorBody] | r403[ErrorBody] | r404[ErrorBody] | r410[ErrorBody]:
    """A call as its join link shows it: state, caller, thread (ended calls answer 200).

    Tags: calls
    """
    call, seller, buyer, _fresh = await call_for_visitor(request, call_id, token)
    return web.json_response(call_out(call, seller, buyer).model_dump(mode="json"))


@api_handler
async def report_call(
    request: web.Request, call_id: CallId, /, body: CallReportIn
) -> r201[CallReportOut] | r401[ErrorBody] | r404[ErrorBody] | r422[ErrorBody] | r429[ErrorBody]:
    """A participant reports a call (also after it ended); a reported call is always reviewed.
    Too many reports too fast answer 429 `rate_limited` with `Retry-After`.

    Tags: calls
    """
    async with request.app[DB]() as session:
        user = await current_user(request, session)
    check_write_rate(request.app[WRITE_THROTTLES].reports, user.id, "reports")
    try:
        result = await request.app[CALLS].report(user.id, call_id, body.reason, body.details)
    except CallError:
        raise not_found("call") from None
    out = CallReportOut(
        id=result.report_id,
        call_id=result.call_id,
        reason=result.reason,
        details=result.details,
        created_at=result.created_at,
    )
    return web.json_response(out.model_dump(mode="json"), status=201)


class _ClosingPage:
    """The call page that is going away: its last command came over HTTP (a ``keepalive``
    fetch from ``pagehide``), and nobody is left to read the replies."""

    def __init__(self, user_id: str) -> None:
        self._user_id = user_id
        self._id = f"http-{secrets.token_hex(6)}"

    @property
    def id(self) -> str:
        return self._id

    @property
    def user_id(self) -> str:
        return self._user_id

    @property
    def is_open(self) -> bool:
        return False

    def send(self, message: BaseModel) -> bool:
        return False

    def send_text(self, text: str) -> bool:
        return False


_LEAVE_MESSAGES: dict[str, type[HangUpMessage | CancelCallMessage | DeclineCallMessage]] = {
    "hang_up": HangUpMessage,
    "cancel_call": CancelCallMessage,
    "decline_call": DeclineCallMessage,
}


@api_handler
async def leave_call(
    request: web.Request, call_id: CallId, /, body: LeaveCallIn
) -> r200[LeaveCallOut] | r401[ErrorBody] | r404[ErrorBody] | r422[ErrorBody]:
    """The call page is closing: hang up (or cancel, or decline while it rings) at once.

    The page sends the same command over its socket on `pagehide`, but a browser may tear
    the socket down before that frame leaves; a `keepalive` fetch is delivered anyway.
    The first of the two to arrive ends the call; the other one finds it over
    (`done: false`).

    Tags: calls
    """
    async with request.app[DB]() as session:
        user = await current_user(request, session)
    message = _LEAVE_MESSAGES[body.message](call_id=call_id, id=0)
    # The router runs it on the node that owns the call, like a socket's command.
    page = _ClosingPage(user.id)
    replies = await request.app[CALL_ROUTER].run(cast(Connection, page), message)
    for reply in replies:
        if isinstance(reply, ErrorMessage):
            if reply.error.code is ErrorCode.NOT_FOUND:
                raise not_found("call")
            return web.json_response(LeaveCallOut(done=False).model_dump(mode="json"))
    return web.json_response(LeaveCallOut(done=bool(replies)).model_dump(mode="json"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/calls/{call_id}", get_call)
    app.router.add_post("/api/v1/calls/{call_id}/leave", leave_call)
    app.router.add_post("/api/v1/calls/{call_id}/report", report_call)
