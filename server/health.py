"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r503
from sqlalchemy import text

from server.api.openapi import api_handler
from server.api.schemas import Health, MediaStatus
from server.appkeys import DB, MEDIA_HOST, READINESS_CHECKS


@api_handler
async def healthz(request: web.Request) -> r200[Health]:
    """The process is alive.

    Tags: operations
    """
    return web.json_response(Health(status="ok").model_dump())


@api_handler
async def readyz(request: web.Request) -> r200[Health] | r503[Health]:
    """The database and the recording storage are reachable, and a media worker runs.

    Tags: operations
    """
    checks: dict[str, str] = {}
    try:
        async with request.app[DB]() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"error: {type(exc).__name__}"
    for name, check in request.app[READINESS_CHECKS].items():
        try:
            await check()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    host = request.app.get(MEDIA_HOST)
    media = MediaStatus.model_validate(host.status()) if host is not None else MediaStatus()
    body = Health(status="ok" if ready else "unavailable", checks=checks, media=media)
    return web.json_response(body.model_dump(), status=200 if ready else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
