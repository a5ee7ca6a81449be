"""Sign-in, sessions, roles and CSRF.

The host marketplace signs users in: it asks the integration API for a short-lived,
single-use login token and sends the browser to ``/login?token=...``; we then store a
session row and set a signed, HttpOnly, SameSite=Lax cookie naming it. Lax (not Strict)
so a link from the host's pages into ``/inbox`` arrives signed in. The row is the truth:
sign-out and expiry end it, and a captured cookie then opens nothing.

State-changing requests that ride on the cookie must echo the session's CSRF token in the
``X-CSRF-Token`` header (pages read it from a ``<meta>`` tag) and, when the browser sends
an Origin, come from our own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.appkeys import SESSION_ENDED_HOOKS, SETTINGS
from server.clock import utcnow
from server.db.models import LoginToken, User, UserSession
from server.errors import ApiError

SESSION_COOKIE = "inboxcall_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class SessionData:
    """A live server-side session (``sessions`` row), as loaded for one request."""

    session_id: str
    """The row id: a hash of the cookie's secret, never the secret itself."""
    user_id: str
    csrf_token: str
    expires_at: datetime


# The session loaded for this request, so pages and handlers read it once.
_LOADED = web.RequestKey("inboxcall_loaded_session", SessionData)


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


def _check_token_shape(token: str) -> None:
    if not token or len(token) > 200:
        raise ApiError(401, "invalid_login_token", "This sign-in link is not valid.")


def _token_refusal(row: LoginToken | None) -> ApiError:
    """Why a login token cannot be used (401): unknown, used or expired."""
    if row is None:
        return ApiError(401, "invalid_login_token", "This sign-in link is not valid.")
    if row.used_at is not None:
        return ApiError(401, "login_token_used", "This sign-in link was already used.")
    return ApiError(401, "login_token_expired", "This sign-in link has expired.")


async def peek_login_token(session: AsyncSession, token: str) -> str:
    """The user a still-usable login token signs in, without using it; else 401."""
    _check_token_shape(token)
    row = await session.get(LoginToken, hash_token(token))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise _token_refusal(row)
    return row.user_id


async def redeem_login_token(session: AsyncSession, token: str) -> str:
    """Consume a login token; answer the user id or raise 401 (unknown, used, expired).

    One conditional UPDATE marks it used: of any number of concurrent redemptions exactly
    one matches the row (SQLite serialises writers, PostgreSQL re-checks the WHERE on the
    row it waited for), so a token signs in once. A read-then-write would let several
    requests see it unused (a row lock is a no-op on SQLite).
    """
    _check_token_shape(token)
    digest = hash_token(token)
    now = utcnow()
    used = await session.execute(
        update(LoginToken)
        .where(
            LoginToken.token_hash == digest,
            LoginToken.used_at.is_(None),
            LoginToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(LoginToken.user_id)
    )
    user_id = used.scalar_one_or_none()
    if user_id is None:
        raise _token_refusal(await session.get(LoginToken, digest))
    return user_id


# --- sessions ----------------------------------------------------------------------------


async def start_session(
    session: AsyncSession, request: web.Request, response: web.StreamResponse, user_id: str
) -> None:
    """Store a new session for ``user_id`` (in the caller's transaction) and set its cookie."""
    settings = request.app[SETTINGS]
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    # Sessions long gone are of no use to anyone: each sign-in clears its owner's.
    await session.execute(
        delete(UserSession).where(
            UserSession.user_id == user_id,
            UserSession.expires_at < now - timedelta(days=1),
        )
    )
    session.add(
        UserSession(
            id=hash_token(secret),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.session_max_age_seconds),
        )
    )
    response.set_cookie(
        SESSION_COOKIE,
        _serializer(request).dumps({"sid": secret}),
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="Lax",
        secure=(settings.public_url or "").startswith("https://"),
        path="/",
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def _cookie_secret(request: web.Request) -> str | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or len(raw) > 1024:
        return None
    try:
        data = _serializer(request).loads(
            raw, max_age=request.app[SETTINGS].session_max_age_seconds
        )
    except BadSignature:
        return None
    secret = data.get("sid") if isinstance(data, dict) else None
    return secret if isinstance(secret, str) and secret else None


async def load_session(request: web.Request, session: AsyncSession) -> SessionData | None:
    """The request's live session: its cookie is good and its row neither ended nor expired."""
    if _LOADED in request:
        return request[_LOADED]
    secret = _cookie_secret(request)
    if secret is None:
        return None
    row = await session.get(UserSession, hash_token(secret))
    if row is None or row.ended_at is not None or row.expires_at <= utcnow():
        return None
    data = SessionData(row.id, row.user_id, row.csrf_token, row.expires_at)
    request[_LOADED] = data
    return data


def loaded_session(request: web.Request) -> SessionData | None:
    """The session ``load_session`` found for this request, if it ran and found one."""
    return request.get(_LOADED)


async def end_session(session: AsyncSession, session_id: str, reason: str) -> bool:
    """End a session (in the caller's transaction); False if it had already ended."""
    ended = await session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
    )
    return bool(getattr(ended, "rowcount", 0))


def session_ended(app: web.Application, session_id: str) -> None:
    """Tell whoever holds things of this session (its open sockets) that it ended."""
    for hook in app[SESSION_ENDED_HOOKS]:
        hook(session_id)


async def current_user(request: web.Request, session: AsyncSession) -> User:
    """The signed-in user, or 401. Checks CSRF on state-changing requests."""
    data = await load_session(request, session)
    if data is None:
        raise ApiError(401, "unauthenticated", "Sign in to continue.")
    user = await session.get(User, data.user_id)
    if user is None:
        raise ApiError(401, "unauthenticated", "Sign in to continue.")
    if request.method not in _SAFE_METHODS:
        check_csrf(request, data)
    return user


def check_csrf(request: web.Request, data: SessionData, sent: str | None = None) -> None:
    """``sent`` is the token a plain HTML form posted; else the ``X-CSRF-Token`` header."""
    if sent is None:
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
