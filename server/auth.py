"""Sign-in, sessions, roles and CSRF.

The host marketplace signs users in: it asks the integration API for a short-lived,
single-use login token and sends the browser to ``/login?token=...``; we then set a
signed, HttpOnly, SameSite=Lax session cookie. Lax (not Strict) so a link from the host's
pages into ``/inbox`` arrives signed in.

State-changing requests that ride on the cookie must echo the session's CSRF token in the
``X-CSRF-Token`` header (pages read it from a ``<meta>`` tag) and, when the browser sends
an Origin, come from our own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from server.appkeys import SETTINGS
from server.clock import utcnow
from server.db.models import LoginToken, User
from server.errors import ApiError

SESSION_COOKIE = "inboxcall_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class SessionData:
    user_id: str
    csrf_token: str


def _serializer(request_or_app: web.Request | web.Application) -> URLSafeTimedSerializer:
    app = request_or_app.app if isinstance(request_or_app, web.Request) else request_or_app
    return URLSafeTimedSerializer(app[SETTINGS].secret_key.get_secret_value(), salt="session")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_login_token(session: AsyncSession, user_id: str, ttl_seconds: int) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        LoginToken(
            token_hash=hash_token(token),
            user_id=user_id,
            expires_at=utcnow() + timedelta(seconds=ttl_seconds),
        )
    )
    return token


async def redeem_login_token(session: AsyncSession, token: str) -> str:
    """Consume a login token; answer the user id or raise 401 (unknown, used, expired)."""
    if not token or len(token) > 200:
        raise ApiError(401, "invalid_login_token", "This sign-in link is not valid.")
    row = await session.get(LoginToken, hash_token(token), with_for_update=True)
    if row is None:
        raise ApiError(401, "invalid_login_token", "This sign-in link is not valid.")
    if row.used_at is not None:
        raise ApiError(401, "login_token_used", "This sign-in link was already used.")
    if row.expires_at <= utcnow():
        raise ApiError(401, "login_token_expired", "This sign-in link has expired.")
    row.used_at = utcnow()
    return row.user_id


def set_session_cookie(request: web.Request, response: web.StreamResponse, user_id: str) -> None:
    settings = request.app[SETTINGS]
    value = _serializer(request).dumps({"uid": user_id, "csrf": secrets.token_urlsafe(24)})
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="Lax",
        secure=(settings.public_url or "").startswith("https://"),
        path="/",
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def read_session(request: web.Request) -> SessionData | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or len(raw) > 1024:
        return None
    try:
        data = _serializer(request).loads(
            raw, max_age=request.app[SETTINGS].session_max_age_seconds
        )
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    uid, csrf = data.get("uid"), data.get("csrf")
    if not isinstance(uid, str) or not isinstance(csrf, str):
        return None
    return SessionData(uid, csrf)


async def current_user(request: web.Request, session: AsyncSession) -> User:
    """The signed-in user, or 401. Checks CSRF on state-changing requests."""
    data = read_session(request)
    if data is None:
        raise ApiError(401, "unauthenticated", "Sign in to continue.")
    user = await session.get(User, data.user_id)
    if user is None:
        raise ApiError(401, "unauthenticated", "Sign in to continue.")
    if request.method not in _SAFE_METHODS:
        check_csrf(request, data)
    return user


def check_csrf(request: web.Request, data: SessionData) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), data.csrf_token.encode()):
        raise ApiError(403, "csrf_failed", "Missing or wrong CSRF token; reload the page.")
    check_same_origin(request)


def check_same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if origin != f"{request.scheme}://{request.host}":
        public = request.app[SETTINGS].public_url
        if not public or origin != public.rstrip("/"):
            raise ApiError(403, "bad_origin", "Request from another site refused.")


def require_role(user: User, *roles: str) -> None:
    if user.role not in roles:
        raise ApiError(403, "forbidden", "Your account cannot do this.")


def check_integration_key(request: web.Request) -> None:
    expected = request.app[SETTINGS].integration_api_key.get_secret_value()
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise ApiError(401, "unauthenticated", "Missing integration API key.")
    # An unset key on our side refuses everything rather than accepting an empty one.
    ok = (
        bool(expected)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(key.strip().encode(), expected.encode())
    )
    if not ok:
        raise ApiError(401, "invalid_api_key", "Wrong integration API key.")
