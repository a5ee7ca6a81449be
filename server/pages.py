"""HTML pages and sign-in. Pages are server-rendered; small ES modules add behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.inbox import thread_parties, visible_thread
from server.api.schemas import ThreadDetail, ThreadList
from server.appkeys import DB, SETTINGS
from server.auth import (
    check_csrf,
    clear_session_cookie,
    current_user,
    end_session,
    issue_login_token,
    load_session,
    loaded_session,
    peek_login_token,
    redeem_login_token,
    session_ended,
    start_session,
)
from server.clock import utcnow
from server.db.models import User
from server.eligibility_snapshots import decide_start
from server.errors import ApiError
from server.inbox_view import (
    inbox_threads,
    is_restricted,
    latest_messages,
    mark_read,
    messages_out,
)
from server.serialize import eligibility_out, thread_summary
from server.settings import Settings

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TEMPLATES = web.AppKey("templates", jinja2.Environment)


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    return env


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    data = loaded_session(request)
    html = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            csrf_token=data.csrf_token if data else "",
            demo=request.app[SETTINGS].demo,
            status=status,
            **context,
        )
    )
    return web.Response(text=html, content_type="text/html", status=status)


def redirect(location: str) -> web.Response:
    """A redirect we can still set cookies on (raising HTTPFound loses them)."""
    return web.Response(status=302, headers={"Location": location})


def home_for(user: User) -> str:
    return "/review" if user.role in ("reviewer", "admin") else "/inbox"


async def page_user(request: web.Request) -> User:
    """The signed-in user for a page; anonymous visitors go to the sign-in page."""
    try:
        async with request.app[DB]() as session:
            return await current_user(request, session)
    except ApiError as exc:
        if exc.status == 401:
            raise web.HTTPFound(f"/login?next={request.path_qs}") from exc
        raise


async def index(request: web.Request) -> web.StreamResponse:
    async with request.app[DB]() as session:
        signed_in = await load_session(request, session) is not None
    if not signed_in:
        raise web.HTTPFound("/login")
    return redirect(home_for(await page_user(request)))


def _safe_next(value: str | None) -> str | None:
    """Only a path on this site: no scheme or host, no backslash, no control characters or
    white space (browsers drop a tab, so "/\t/evil.example" would become "//evil.example")."""
    if not value or len(value) > 2000 or not value.startswith("/"):
        return None
    if any(ch == "\\" or ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return None
    return value


async def login(request: web.Request) -> web.StreamResponse:
    """``GET /login?token=``: sign in at once, unless this browser holds another person's
    session: then ask first ("Continue as ..."), so a link cannot silently swap a signed-in
    person into someone else's account (login CSRF). The token stays unused until then."""
    token = request.query.get("token")
    if token is not None:
        next_path = _safe_next(request.query.get("next"))
        async with request.app[DB]() as session:
            current = await load_session(request, session)
            target_id = await peek_login_token(session, token)
            if current is not None and current.user_id != target_id:
                signed_in_as = await session.get(User, current.user_id)
                target = await session.get(User, target_id)
                assert signed_in_as is not None and target is not None  # foreign keys
                page = render(
                    request,
                    "login_confirm.html",
                    user=signed_in_as,
                    target=target,
                    token=token,
                    next=next_path,
                    home=home_for(signed_in_as),
                )
                # Under "no-referrer" Chromium sends "Origin: null" with the form's POST,
                # which the Origin check refuses; "same-origin" still keeps the token in
                # this page's address from every other site.
                page.headers["Referrer-Policy"] = "same-origin"
                return page
        return await _redeem_and_sign_in(request, token, next_path)
    nxt = _safe_next(request.query.get("next"))
    if not request.app[SETTINGS].demo:
        return render(request, "login.html", status=401, users=[], next=nxt)
    async with request.app[DB]() as session:
        users = (await session.scalars(select(User).order_by(User.role, User.id))).all()
    return render(request, "login.html", users=users, next=nxt)


async def confirm_login(request: web.Request) -> web.StreamResponse:
    """``POST /login``: the "Continue as ..." button. It needs the session it replaces and
    that session's CSRF token (a hidden field): another site can neither read the token nor
    post with our cookie (SameSite=Lax), so it cannot replace anyone's session."""
    form = await request.post()
    token, csrf, nxt = (form.get(name) for name in ("token", "csrf_token", "next"))
    if not isinstance(token, str) or not isinstance(csrf, str):
        raise ApiError(400, "bad_request", "Open the sign-in link again.")
    async with request.app[DB]() as session:
        current = await load_session(request, session)
    if current is None:
        raise ApiError(
            403, "csrf_failed", "This confirmation is no longer valid; open the sign-in link again."
        )
    check_csrf(request, current, sent=csrf)
    return await _redeem_and_sign_in(
        request, token, _safe_next(nxt if isinstance(nxt, str) else None)
    )


async def _redeem_and_sign_in(
    request: web.Request, token: str, next_path: str | None
) -> web.StreamResponse:
    """Use the token; sign its user in unless this browser is already theirs. A session of
    another person in this browser ends here (it is being replaced)."""
    async with request.app[DB]() as session, session.begin():
        current = await load_session(request, session)
        user_id = await redeem_login_token(session, token)
        user = await session.get(User, user_id)
        assert user is not None
        response = redirect(next_path or home_for(user))
        replaced = None
        if current is None or current.user_id != user_id:
            if current is not None and await end_session(session, current.session_id, "replaced"):
                replaced = current.session_id
            await start_session(session, request, response, user.id)
    if replaced is not None:
        session_ended(request.app, replaced)
    return response


async def demo_login(request: web.Request) -> web.StreamResponse:
    """Demo only: sign in as any demo user (the host marketplace does this in production)."""
    settings = request.app[SETTINGS]
    if not settings.demo:
        raise ApiError(404, "not_found", "No such page.")
    user_id = request.match_info["user_id"]
    async with request.app[DB]() as session, session.begin():
        if await session.get(User, user_id) is None:
            raise ApiError(404, "not_found", "No such user.")
        token = await issue_login_token(session, user_id, settings.login_token_ttl_seconds)
    next_part = ""
    if nxt := _safe_next(request.query.get("next")):
        next_part = "&next=" + jinja2.filters.do_urlencode(nxt)
    raise web.HTTPFound(f"/login?token={token}{next_part}")


async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out: the session ends server-side (the cookie, even a copied one, stops working)
    and its open sockets close with 4001."""
    async with request.app[DB]() as session, session.begin():
        await current_user(request, session)  # checks CSRF
        data = loaded_session(request)
        assert data is not None
        ended = await end_session(session, data.session_id, "signed_out")
    if ended:
        session_ended(request.app, data.session_id)
    response = redirect("/login")
    clear_session_cookie(response)
    return response


async def inbox_context(session: AsyncSession, user: User, settings: Settings) -> dict[str, Any]:
    """What every inbox page needs: the thread list (drawn by web/static/thread_list.js from
    the same JSON ``GET /api/v1/threads`` answers) and whether the viewer is restricted."""
    threads = await inbox_threads(session, user, settings)
    return {
        "inbox_data": ThreadList(threads=threads).model_dump(mode="json"),
        "restricted": await is_restricted(session, user),
    }


async def inbox(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    if user.role not in ("seller", "buyer"):
        raise web.HTTPFound(home_for(user))
    async with request.app[DB]() as session:
        context = await inbox_context(session, user, request.app[SETTINGS])
    return render(request, "inbox.html", user=user, current_thread_id=None, **context)


async def thread_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    settings = request.app[SETTINGS]
    async with request.app[DB]() as session:
        try:
            thread = await visible_thread(session, user, request.match_info["thread_id"])
        except ApiError:
            return render(
                request,
                "error.html",
                status=404,
                user=user,
                title="Conversation not found",
                message="This conversation does not exist or is not yours.",
            )
        seller, buyer, blocked = await thread_parties(session, thread)
        now = utcnow()
        messages = await messages_out(
            session, user, await latest_messages(session, thread.id), settings
        )
        decision = await decide_start(
            session, caller=user, thread=thread, now=now, settings=settings
        )
    # Opening the conversation reads it; the page marks later messages as it shows them.
    async with request.app[DB]() as session, session.begin():
        await mark_read(session, thread.id, user.id, now)
    async with request.app[DB]() as session:
        context = await inbox_context(session, user, settings)
    detail = ThreadDetail(
        **thread_summary(thread, seller, buyer, blocked).model_dump(), messages=messages
    )
    return render(
        request,
        "thread.html",
        user=user,
        thread=thread,
        seller=seller,
        buyer=buyer,
        thread_data=detail.model_dump(mode="json"),
        eligibility_data=eligibility_out(decision).model_dump(mode="json"),
        blocked=blocked,
        current_thread_id=thread.id,
        **context,
    )


async def review_console(request: web.Request) -> web.StreamResponse:
    """The reviewer console; its data comes from the review API (``/api/v1/review/...``)."""
    user = await page_user(request)
    if user.role not in ("reviewer", "admin"):
        return render(
            request,
            "error.html",
            status=403,
            user=user,
            title="Reviewers only",
            message="The review console is open to compliance reviewers and administrators only.",
            hint="If you need access, ask an administrator to give your account the reviewer role.",
        )
    return render(request, "review.html", user=user)


async def favicon(request: web.Request) -> web.StreamResponse:
    """Browsers ask for /favicon.ico on every page whatever the page's <link rel=icon>."""
    return web.FileResponse(
        WEB_DIR / "static" / "favicon.svg",
        headers={"Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400"},
    )


def add_routes(app: web.Application) -> None:
    app[TEMPLATES] = make_templates()
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/login", login)
    app.router.add_post("/login", confirm_login)
    app.router.add_get("/login/demo/{user_id}", demo_login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/inbox", inbox)
    app.router.add_get("/inbox/threads/{thread_id}", thread_page)
    app.router.add_get("/review", review_console)
    app.router.add_static("/static", WEB_DIR / "static", append_version=True)
