"""HTML pages and sign-in. Pages are server-rendered; small ES modules add behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy import or_, select

from server.api.inbox import visible_thread
from server.appkeys import DB, SETTINGS
from server.auth import (
    clear_session_cookie,
    current_user,
    issue_login_token,
    read_session,
    redeem_login_token,
    set_session_cookie,
)
from server.clock import utcnow
from server.db.models import Block, Message, Thread, User
from server.eligibility_snapshots import decide_start
from server.errors import ApiError

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TEMPLATES = web.AppKey("templates", jinja2.Environment)


def make_templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    data = read_session(request)
    html = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            csrf_token=data.csrf_token if data else "", demo=request.app[SETTINGS].demo, **context
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
    if read_session(request) is None:
        raise web.HTTPFound("/login")
    return redirect(home_for(await page_user(request)))


def _safe_next(value: str | None) -> str | None:
    # Only same-site paths: "//evil.example" and "/\\evil" would leave the site.
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return None


async def login(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token")
    if token is not None:
        async with request.app[DB]() as session, session.begin():
            user_id = await redeem_login_token(session, token)
            user = await session.get(User, user_id)
            assert user is not None
        target = _safe_next(request.query.get("next")) or home_for(user)
        response = redirect(target)
        set_session_cookie(request, response, user.id)
        return response
    if not request.app[SETTINGS].demo:
        return render(request, "login.html", status=401, users=[], next=None)
    async with request.app[DB]() as session:
        users = (await session.scalars(select(User).order_by(User.role, User.id))).all()
    return render(request, "login.html", users=users, next=_safe_next(request.query.get("next")))


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
    async with request.app[DB]() as session:
        await current_user(request, session)  # checks CSRF
    response = redirect("/login")
    clear_session_cookie(response)
    return response


async def inbox(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    if user.role not in ("seller", "buyer"):
        raise web.HTTPFound(home_for(user))
    async with request.app[DB]() as session:
        threads = (
            await session.scalars(
                select(Thread)
                .where(or_(Thread.seller_id == user.id, Thread.buyer_id == user.id))
                .order_by(Thread.last_buyer_activity_at.desc(), Thread.id)
            )
        ).all()
        others = {
            u.id: u
            for u in (
                await session.scalars(
                    select(User).where(
                        User.id.in_({t.seller_id for t in threads} | {t.buyer_id for t in threads})
                    )
                )
            ).all()
        }
    return render(request, "inbox.html", user=user, threads=threads, users=others, thread=None)


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
        seller = await session.get(User, thread.seller_id)
        buyer = await session.get(User, thread.buyer_id)
        messages = (
            await session.scalars(
                select(Message).where(Message.thread_id == thread.id).order_by(Message.created_at)
            )
        ).all()
        blocked = await session.get(Block, (thread.buyer_id, thread.seller_id)) is not None
        decision = await decide_start(
            session, caller=user, thread=thread, now=utcnow(), settings=settings
        )
    return render(
        request,
        "thread.html",
        user=user,
        thread=thread,
        seller=seller,
        buyer=buyer,
        messages=messages,
        blocked=blocked,
        decision=decision,
    )


def add_routes(app: web.Application) -> None:
    app[TEMPLATES] = make_templates()
    app.router.add_get("/", index)
    app.router.add_get("/login", login)
    app.router.add_get("/login/demo/{user_id}", demo_login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/inbox", inbox)
    app.router.add_get("/inbox/threads/{thread_id}", thread_page)
    app.router.add_static("/static", WEB_DIR / "static", append_version=True)
