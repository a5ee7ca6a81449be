"""Server-side sessions: sign-out and expiry end a session for good (cookie and sockets),
and a login link cannot silently replace another person's session (login CSRF)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select, update

from server.appkeys import DB
from server.auth import SESSION_COOKIE
from server.clock import utcnow
from server.db.models import LoginToken, UserSession
from server.settings import Settings
from signaling import ws_limits
from signaling.ws_limits import WS_PATH
from tests.support.service import Host, sign_in
from tests.support.ws_client import WsClient

pytestmark = pytest.mark.integration

ClientFactory = Any


def login_path(url: str) -> str:
    return url[url.index("/login") :]


def session_cookie(client: TestClient[Any, Any]) -> str:
    for cookie in client.session.cookie_jar:
        if cookie.key == SESSION_COOKIE:
            return cookie.value
    raise AssertionError("no session cookie")


async def with_cookie(new_client: ClientFactory, value: str) -> TestClient[Any, Any]:
    """A different browser that replays a captured cookie."""
    thief: TestClient[Any, Any] = await new_client()
    thief.session.cookie_jar.update_cookies({SESSION_COOKIE: value})
    return thief


async def closed_with(ws: WsClient, timeout: float = 10.0) -> int | None:
    """Read until the server closes the socket; answer its close code."""
    while True:
        frame = await ws.ws.receive(timeout=timeout)
        if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.ws.close_code


async def test_sign_out_ends_the_session_for_a_captured_cookie(
    new_client: ClientFactory, host: Host
) -> None:
    seller, _, _ = await host.eligible_pair()
    browser: TestClient[Any, Any] = await new_client()
    csrf = await sign_in(browser, host, seller)
    captured = session_cookie(browser)
    thief = await with_cookie(new_client, captured)
    assert (await thief.get("/api/v1/me")).status == 200

    resp = await browser.post("/logout", headers={"X-CSRF-Token": csrf}, allow_redirects=False)
    assert resp.status == 302

    me = await thief.get("/api/v1/me")
    assert me.status == 401
    assert (await me.json())["error"]["code"] == "unauthenticated"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await WsClient.connect(thief)
    assert refused.value.status == 401


async def test_sign_out_closes_that_sessions_sockets_with_4001(
    new_client: ClientFactory, host: Host
) -> None:
    seller, _, _ = await host.eligible_pair()
    laptop: TestClient[Any, Any] = await new_client()
    csrf = await sign_in(laptop, host, seller)
    phone: TestClient[Any, Any] = await new_client()
    await sign_in(phone, host, seller)
    tab_one, tab_two = await WsClient.connect(laptop), await WsClient.connect(laptop)
    on_phone = await WsClient.connect(phone)

    await laptop.post("/logout", headers={"X-CSRF-Token": csrf}, allow_redirects=False)

    assert await closed_with(tab_one) == 4001
    assert await closed_with(tab_two) == 4001
    # The same person's other session (another device) is not touched.
    assert (await on_phone.ok("ping"))["type"] == "pong"
    await on_phone.close()


async def test_an_expired_session_opens_nothing_and_its_socket_closes_at_expiry(
    new_client: ClientFactory, host: Host, app: web.Application
) -> None:
    seller, _, _ = await host.eligible_pair()
    browser: TestClient[Any, Any] = await new_client()
    await sign_in(browser, host, seller)
    async with app[DB]() as session, session.begin():
        await session.execute(
            update(UserSession).values(expires_at=utcnow() + timedelta(seconds=1))
        )
    ws = await WsClient.connect(browser)  # learns the expiry when it opens
    assert await closed_with(ws) == 4001
    assert (await browser.get("/api/v1/me")).status == 401


@pytest.fixture
def fast_session_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requested before the server starts, so the sweep's first wait is already short."""
    monkeypatch.setattr(ws_limits, "SESSION_CHECK_INTERVAL_SECONDS", 0.2)


async def test_a_session_ended_elsewhere_closes_its_sockets_within_the_sweep(
    fast_session_sweep: None, new_client: ClientFactory, host: Host, app: web.Application
) -> None:
    """Another node's sign-out (or an operator) changes only the row; the sweep sees it."""
    seller, _, _ = await host.eligible_pair()
    browser: TestClient[Any, Any] = await new_client()
    await sign_in(browser, host, seller)
    ws = await WsClient.connect(browser)
    assert (await ws.ok("ping"))["type"] == "pong"
    async with app[DB]() as session, session.begin():
        await session.execute(
            update(UserSession).values(ended_at=utcnow(), end_reason="signed_out")
        )
    assert await closed_with(ws) == 4001


# --- login CSRF: a link for someone else asks first ----------------------------------------


async def test_a_login_link_for_another_person_asks_before_replacing_the_session(
    new_client: ClientFactory, host: Host, app: web.Application
) -> None:
    victim, attacker, _ = await host.eligible_pair()
    await host.user(attacker, "buyer", vid=True, display_name="Mallory Attacker")
    browser: TestClient[Any, Any] = await new_client()
    await sign_in(browser, host, victim)
    victims_cookie = session_cookie(browser)
    victims_socket = await WsClient.connect(browser)
    link = login_path(await host.login_url(attacker))

    page = await browser.get(link, allow_redirects=False)
    assert page.status == 200
    html = await page.text()
    assert "Continue as Mallory Attacker" in html
    # Nothing changed yet: still the victim, and the link is still unused.
    assert (await (await browser.get("/api/v1/me")).json())["user"]["id"] == victim
    async with app[DB]() as session:
        token_row = (
            await session.scalars(select(LoginToken).where(LoginToken.user_id == attacker))
        ).one()
        assert token_row.used_at is None

    token = link.split("token=", 1)[1]
    me = await (await browser.get("/api/v1/me")).json()
    origin = str(browser.make_url("/")).rstrip("/")
    # A forged confirmation (no CSRF token, a wrong one, or from another site) is refused.
    for form, headers in (
        ({"token": token}, {"Origin": origin}),
        ({"token": token, "csrf_token": "wrong"}, {"Origin": origin}),
        ({"token": token, "csrf_token": me["csrf_token"]}, {"Origin": "https://evil.example"}),
    ):
        refused = await browser.post("/login", data=form, headers=headers, allow_redirects=False)
        assert refused.status in (400, 403), await refused.text()
    outsider: TestClient[Any, Any] = await new_client()  # a cross-site post carries no cookie
    refused = await outsider.post("/login", data={"token": token, "csrf_token": "x"})
    assert refused.status == 403
    assert (await outsider.get("/api/v1/me")).status == 401
    assert (await (await browser.get("/api/v1/me")).json())["user"]["id"] == victim

    confirmed = await browser.post(
        "/login",
        data={"token": token, "csrf_token": me["csrf_token"]},
        headers={"Origin": origin},
        allow_redirects=False,
    )
    assert confirmed.status == 302
    assert (await (await browser.get("/api/v1/me")).json())["user"]["id"] == attacker
    # The replaced session is over everywhere, its sockets too.
    assert (await (await with_cookie(new_client, victims_cookie)).get("/api/v1/me")).status == 401
    assert await closed_with(victims_socket) == 4001


async def test_a_login_link_signs_in_at_once_without_a_session_or_for_the_same_person(
    new_client: ClientFactory, host: Host, app: web.Application
) -> None:
    seller, _, _ = await host.eligible_pair()
    browser: TestClient[Any, Any] = await new_client()
    first = await browser.get(login_path(await host.login_url(seller)), allow_redirects=False)
    assert first.status == 302 and first.headers["Location"] == "/inbox"
    cookie = session_cookie(browser)
    again = await browser.get(login_path(await host.login_url(seller)), allow_redirects=False)
    assert again.status == 302 and again.headers["Location"] == "/inbox"
    assert session_cookie(browser) == cookie  # the same session goes on
    async with app[DB]() as session:
        used = await session.scalar(
            select(func.count()).select_from(LoginToken).where(LoginToken.used_at.is_not(None))
        )
    assert used == 2  # both links are spent


async def test_a_stateless_cookie_of_the_old_format_is_refused(
    new_client: ClientFactory, host: Host, settings: Settings
) -> None:
    """Cookies signed before sessions were stored name a user, not a session: a captured
    one must not outlive the upgrade."""
    seller, _, _ = await host.eligible_pair()
    serializer = URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt="session")
    old = await with_cookie(new_client, serializer.dumps({"uid": seller, "csrf": "c"}))
    assert (await old.get("/api/v1/me")).status == 401
    assert (await old.get(WS_PATH)).status == 401
