"""Typed bridge to aiohttp-pydantic, and the OpenAPI document built from the routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
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


# Routes anyone may call (load balancers, tooling): no session, no key.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
# The recording bytes are not JSON: what the media route really sends.
_MEDIA_CONTENT = {
    kind: {"schema": {"type": "string", "format": "binary"}}
    for kind in ("video/webm", "video/mp4", "application/octet-stream")
}


def build_openapi(app: web.Application) -> dict[str, Any]:
    spec = cast(dict[str, Any], generate_oas([app], "1.0.0", "inboxcall API", SECURITY_SCHEMES))
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if isinstance(operation, dict):
                _declare_common_answers(path, method, operation)
    return spec


def _declare_common_answers(path: str, method: str, operation: dict[str, Any]) -> None:
    """Declare what every route answers besides its own codes: the errors of the layers in
    front of the handler (sign-in, CSRF, body parsing and size, parameter validation),
    each with the shared error body. The handlers' annotations declare the rest."""
    responses: dict[str, Any] = operation.setdefault("responses", {})

    def declare(status: int, why: str) -> None:
        responses.setdefault(str(status), {"description": why, "content": _ERROR_CONTENT})

    if path in PUBLIC_PATHS:
        operation["security"] = []
    elif path.startswith("/api/v1/integration/"):
        operation.setdefault("security", [{"integrationKey": []}])
        declare(401, "Missing or wrong integration API key.")
    else:
        operation.setdefault("security", [{"session": []}])
        declare(401, "Not signed in.")
        if method in UNSAFE_METHODS:
            declare(403, "Missing or wrong CSRF token, or a request from another site.")
    if "requestBody" in operation:
        operation["requestBody"]["required"] = True
        declare(400, "The body is not JSON.")
        declare(413, "The body is larger than the service accepts.")
        declare(422, "The body does not validate.")
    if operation.get("parameters"):
        declare(422, "A path or query parameter does not validate.")
    if path == "/api/v1/review/recordings/{recording_id}/media":
        for status in ("200", "206"):
            if status in responses:
                responses[status]["content"] = _MEDIA_CONTENT
    for status, response in responses.items():
        if not response.get("description"):
            response["description"] = HTTPStatus(int(status)).phrase


def install_openapi(app: web.Application) -> None:
    """Serve the document at /api/openapi.json; built on first request, once routes are final."""
    app[OPENAPI_KEY] = {}
    app.router.add_get("/api/openapi.json", openapi_document)


async def openapi_document(request: web.Request) -> web.Response:
    document = request.app[OPENAPI_KEY]
    if not document:
        document.update(build_openapi(request.app))
    return web.json_response(document)
