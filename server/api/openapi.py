"""Typed bridge to aiohttp-pydantic, and the OpenAPI document built from the routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp_pydantic.decorator import inject_params
from aiohttp_pydantic.oas.view import generate_oas

from server.errors import on_validation_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_inject = inject_params(on_validation_error=on_validation_error).and_request


def api_handler(handler: Callable[..., Awaitable[web.StreamResponse]]) -> Handler:
    """Validate path, query, headers and body from the handler's annotations."""
    return cast(Handler, _inject(handler))


OPENAPI_KEY = web.AppKey("openapi_document", dict[str, Any])

SECURITY_SCHEMES = {
    "session": {"type": "apiKey", "in": "cookie", "name": "inboxcall_session"},
    "integrationKey": {"type": "http", "scheme": "bearer"},
}


def build_openapi(app: web.Application) -> dict[str, Any]:
    spec = cast(dict[str, Any], generate_oas([app], "1.0.0", "inboxcall API", SECURITY_SCHEMES))
    for path, operations in spec.get("paths", {}).items():
        scheme = "integrationKey" if path.startswith("/api/v1/integration/") else "session"
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.setdefault("security", [{scheme: []}])
    return spec


def install_openapi(app: web.Application) -> None:
    """Serve the document at /api/openapi.json; built on first request, once routes are final."""
    app[OPENAPI_KEY] = {}
    app.router.add_get("/api/openapi.json", openapi_document)


async def openapi_document(request: web.Request) -> web.Response:
    document = request.app[OPENAPI_KEY]
    if not document:
        document.update(build_openapi(request.app))
    return web.json_response(document)
