"""``GET /api/v1/ice-servers``: the ICE servers a signed-in page gives its RTCPeerConnection.

Minted per user at each request (the call page asks before every new peer connection), so
credentials are fresh for every leg and expire on their own. Without TURN configured the
list is empty: browsers then reach the media ports directly, or not at all when their
network allows no direct UDP (the call page says so).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r401

from server.api.openapi import api_handler
from server.api.schemas import ErrorBody, IceServerOut, IceServersOut
from server.appkeys import DB, SETTINGS
from server.auth import current_user
from server.clock import utcnow
from server.turn_credentials import turn_credentials


@api_handler
async def get_ice_servers(request: web.Request) -> r200[IceServersOut] | r401[ErrorBody]:
    """The signed-in person's TURN servers with credentials minted for them, for
    `new RTCPeerConnection({iceServers})`; empty when the service runs without TURN.

    Tags: calls
    """
    async with request.app[DB]() as session:
        user = await current_user(request, session)
    settings = request.app[SETTINGS]
    urls = settings.turn_url_list
    if not urls:
        body = IceServersOut(ice_servers=[], expires_at=None)
    else:
        minted = turn_credentials(
            urls=urls,
            secret=settings.turn_secret.get_secret_value(),
            user_id=user.id,
            ttl_seconds=settings.turn_credential_ttl_seconds,
            now=utcnow(),
        )
        body = IceServersOut(
            ice_servers=[
                IceServerOut(
                    urls=list(minted.urls), username=minted.username, credential=minted.credential
                )
            ],
            expires_at=minted.expires_at,
        )
    response = web.json_response(body.model_dump(mode="json"))
    # Credentials: never cached by a browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/ice-servers", get_ice_servers)
