"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r503
from sqlalchemy import update

from server.api.openapi import api_handler
from server.api.schemas import Health, MediaStatus
from server.appkeys import BUS, DB, MEDIA_HOST, NODE_ID, READINESS_CHECKS
from server.clock import utcnow
from server.db.models import Node


@api_handler
async def healthz(request: web.Request) -> r200[Health]:
    """The process is alive.

    Tags: operations
    """
    return web.json_response(Health(status="ok").model_dump())


async def _prove_a_write(app: web.Application) -> None:
    """A committed write, not only ``SELECT 1``: a full disk or a read-only database takes
    reads but fails every call change. The write is this node's heartbeat (harmless)."""
    async with app[DB]() as session, session.begin():
        result = await session.execute(
            update(Node).where(Node.id == app[NODE_ID]).values(heartbeat_at=utcnow())
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise LookupError("this node's row is missing (the heartbeat puts it back)")


@api_handler
async def readyz(request: web.Request) -> r200[Health] | r503[Health]:
    """The database takes writes, the recording storage answers, a media worker runs, and
    the recording staging folder has room for a new call's recording.

    Tags: operations
    """
    checks: dict[str, str] = {}
    try:
        await _prove_a_write(request.app)
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
    bus = request.app.get(BUS)
    body = Health(
        status="ok" if ready else "unavailable",
        checks=checks,
        media=media,
        node=request.app.get(NODE_ID, ""),
        bus="ok" if bus is None or bus.healthy else "unreachable",
    )
    return web.json_response(body.model_dump(), status=200 if ready else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
