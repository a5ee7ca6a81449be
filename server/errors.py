"""Turn every failure into JSON ``{"error": {"code", "message"}}`` — in one place.

Domain code raises ``ApiError`` (or a library's own error, translated here); aiohttp's
own HTTP errors (404, 405, 413, malformed JSON) are rewritten to the same shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger(__name__)

_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error the client caused or must know about, with a stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        """Sent with the error answer (``Retry-After`` of a 429...)."""
        self.extra = extra


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response(error_body(code, message, **extra), status=status)


def validation_error_response(exc: ValidationError, where: str) -> web.Response:
    first = exc.errors(include_url=False)[0] if exc.errors() else {"msg": "invalid", "loc": ()}
    loc = ".".join(str(p) for p in first.get("loc", ()))
    message = f"Invalid {where}: {loc + ': ' if loc else ''}{first['msg']}"
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": e["msg"]}
        for e in exc.errors(include_url=False)
    ]
    return error_response(422, "validation_error", message, details=details)


async def on_validation_error(exc: ValidationError, context: str) -> web.StreamResponse:
    """Hook for aiohttp-pydantic so validation errors share the error shape."""
    return validation_error_response(exc, context)


def _message_from_http_exception(exc: web.HTTPException) -> str:
    text = exc.text or exc.reason
    try:
        parsed = json.loads(text)
    except (ValueError, TypeError):
        return text
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    return exc.reason


@web.middleware
async def json_error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, **exc.extra)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        if exc.status == 413:
            message = "Request body is too large."
        else:
            message = _message_from_http_exception(exc)
        response = error_response(exc.status, code, message)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except ValidationError as exc:
        return validation_error_response(exc, "input")
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side.")
