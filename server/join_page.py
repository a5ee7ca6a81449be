"""``GET /calls/{call_id}/join?token=...``: the page behind the buyer's join link.

A minimal page (the pages' own module adds the behaviour): the recording notice, "Join
call" and "Decline". Anonymous visitors are sent to sign in and come back; a bad link gets
the error page with the JSON twin's status (403 / 410 / 404); an ended call says so.
"""

from __future__ import annotations

from aiohttp import web

from server.api.calls import RECORDING_NOTICE, call_for_visitor
from server.errors import ApiError
from server.pages import page_user, render
from signaling.call_state import CallPhase

_TITLES = {
    403: "This join link is not valid",
    404: "Call not found",
    410: "This join link has expired",
}


async def join_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    call_id = request.match_info["call_id"]
    token = request.query.get("token")
    try:
        call, seller, buyer, _fresh = await call_for_visitor(request, call_id, token)
    except ApiError as exc:
        if exc.status not in _TITLES:
            raise
        return render(
            request,
            "error.html",
            status=exc.status,
            user=user,
            title=_TITLES[exc.status],
            message=exc.message,
        )
    return render(
        request,
        "join.html",
        user=user,
        call=call,
        seller=seller,
        buyer=buyer,
        ended=call.state == CallPhase.ENDED.value,
        is_buyer=user.id == buyer.id,
        notice=RECORDING_NOTICE,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/calls/{call_id}/join", join_page)
