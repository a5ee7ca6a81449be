"""Sign-in through login tokens, roles and ownership, and the integration API key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from server.appkeys import DB
from server.clock import utcnow
from server.db.models import LoginToken
from tests.support.service import AUTH, Host, sign_in

pytestmark = pytest.mark.integration


async def test_anonymous_gets_401_json(client: TestClient[Any, Any], host: Host) -> None:
    _, _, thread = await host.eligible_pair()
    for path in (
        "/api/v1/threads",
        f"/api/v1/threads/{thread}",
        f"/api/v1/threads/{thread}/call-eligibility",
    ):
        resp = await client.get(path)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_login_link_sets_httponly_samesite_cookie_and_redirects(
    new_client: Any, host: Host
) -> None:
    seller, _, _ = await host.eligible_pair()
    url = await host.login_url(seller)
    browser: TestClient[Any, Any] = await new_client()
    resp = await browser.get(url[url.index("/login") :], allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/inbox"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    me = await browser.get("/api/v1/me")
    assert (await me.json())["user"]["id"] == seller


async def test_login_token_is_single_use(new_client: Any, host: Host) -> None:
    seller, _, _ = await host.eligible_pair()
    url = await host.login_url(seller)
    path = url[url.index("/login") :]
    first: TestClient[Any, Any] = await new_client()
    assert (await first.get(path, allow_redirects=False)).status == 302
    second: TestClient[Any, Any] = await new_client()
    resp = await second.get(path, allow_redirects=False)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "login_token_used"
    assert (await second.get("/api/v1/me")).status == 401


async def test_expired_login_token_is_refused(new_client: Any, host: Host, app: Any) -> None:
    seller, _, _ = await host.eligible_pair()
    url = await host.login_url(seller)
    async with app[DB]() as session, session.begin():
        await session.execute(update(LoginToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    browser: TestClient[Any, Any] = await new_client()
    resp = await browser.get(url[url.index("/login") :], allow_redirects=False)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "login_token_expired"


@pytest.mark.parametrize("token", ["", "garbage", "x" * 500])
async def test_unknown_login_token_is_refused(client: TestClient[Any, Any], token: str) -> None:
    resp = await client.get("/login", params={"token": token}, allow_redirects=False)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_login_token"


async def test_forged_session_cookie_is_ignored(client: TestClient[Any, Any]) -> None:
    client.session.cookie_jar.update_cookies({"inboxcall_session": "eyJ1aWQiOiJzIn0.forged.sig"})
    assert (await client.get("/api/v1/me")).status == 401


async def test_other_users_thread_is_not_found(signed_in: Any, host: Host) -> None:
    await host.eligible_pair("1")
    await host.eligible_pair("2")
    seller1, _ = await signed_in("seller1")
    for path in ("/api/v1/threads/thread2", "/api/v1/threads/thread2/call-eligibility"):
        resp = await seller1.get(path)
        assert resp.status == 404
    listed = await (await seller1.get("/api/v1/threads")).json()
    assert [t["id"] for t in listed["threads"]] == ["thread1"]
    buyer2, _ = await signed_in("buyer2")
    listed = await (await buyer2.get("/api/v1/threads")).json()
    assert [t["id"] for t in listed["threads"]] == ["thread2"]


async def test_reviewer_has_no_inbox(signed_in: Any, host: Host) -> None:
    await host.eligible_pair()
    await host.user("rev", "reviewer")
    reviewer, _ = await signed_in("rev")
    assert (await reviewer.get("/api/v1/threads")).status == 403
    assert (await reviewer.get("/api/v1/threads/thread")).status == 404


async def test_state_change_without_csrf_token_is_refused(signed_in: Any, host: Host) -> None:
    _, buyer, thread = await host.eligible_pair()
    client, csrf = await signed_in(buyer)
    url = f"/api/v1/threads/{thread}/messages"
    resp = await client.post(url, json={"text": "hello"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    resp = await client.post(url, json={"text": "hello"}, headers={"X-CSRF-Token": "wrong"})
    assert resp.status == 403
    resp = await client.post(
        url,
        json={"text": "hello"},
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "bad_origin"
    resp = await client.post(url, json={"text": "hello"}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dGVzdA=="},
        {"Authorization": "Bearer"},
    ],
)
async def test_integration_key_missing_or_wrong(
    client: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    # The key is checked before the body is parsed: a bad body still answers 401.
    resp = await client.put("/api/v1/integration/users/u1", json={"role": "nope"}, headers=headers)
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] in {"unauthenticated", "invalid_api_key"}
    resp = await client.post("/api/v1/integration/users/u1/login-token", headers=headers)
    assert resp.status == 401


async def test_unset_integration_key_refuses_everything(tmp_path: Any) -> None:
    from aiohttp.test_utils import TestServer

    from server.app import create_app
    from tests.support.service import make_settings

    app = create_app(make_settings(tmp_path, integration_api_key=""))
    async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as c:
        resp = await c.put(
            "/api/v1/integration/users/u1",
            json={"role": "buyer", "display_name": "U"},
            headers={"Authorization": "Bearer "},
        )
        assert resp.status == 401


async def test_upserts_are_idempotent(client: TestClient[Any, Any], host: Host) -> None:
    first = await host.user("s1", "seller", business_program="member")
    again = await host.user("s1", "seller", business_program="member")
    assert first == again
    await host.user("b1", "buyer", vid=True)
    at = "2026-11-20T10:00:00+00:00"
    t1 = await host.thread("th1", "s1", "b1", last_buyer_activity_at=at)
    t2 = await host.thread("th1", "s1", "b1", last_buyer_activity_at=at)
    assert t1 == t2
    resp = await client.put("/api/v1/integration/blocks/b1/s1", headers=AUTH)
    assert (await resp.json())["blocked"] is True
    resp = await client.put("/api/v1/integration/blocks/b1/s1", headers=AUTH)
    assert resp.status == 200
    resp = await client.delete("/api/v1/integration/blocks/b1/s1", headers=AUTH)
    assert (await resp.json())["blocked"] is False
    resp = await client.delete("/api/v1/integration/blocks/b1/s1", headers=AUTH)
    assert resp.status == 200


async def test_role_and_party_changes_are_conflicts(
    client: TestClient[Any, Any], host: Host
) -> None:
    await host.eligible_pair()
    resp = await client.put(
        "/api/v1/integration/users/seller",
        json={"role": "buyer", "display_name": "x"},
        headers=AUTH,
    )
    assert resp.status == 409
    await host.user("other-buyer", "buyer", vid=True)
    resp = await client.put(
        "/api/v1/integration/threads/thread",
        json={"seller_id": "seller", "buyer_id": "other-buyer", "initiated_by": "buyer"},
        headers=AUTH,
    )
    assert resp.status == 409


async def test_signed_in_person_cannot_use_integration_api(signed_in: Any, host: Host) -> None:
    seller, _, _ = await host.eligible_pair()
    browser, csrf = await signed_in(seller)
    resp = await browser.put(
        f"/api/v1/integration/users/{seller}",
        json={"role": "seller", "display_name": "x", "business_program": "member"},
        headers={"X-CSRF-Token": csrf},
    )
    assert resp.status == 401


async def test_sign_in_helper_works(new_client: Any, host: Host) -> None:
    seller, _, _ = await host.eligible_pair()
    browser: TestClient[Any, Any] = await new_client()
    csrf = await sign_in(browser, host, seller)
    assert len(csrf) > 20


@pytest.mark.parametrize(
    "target", ["//evil.example", "/\\evil.example", "/\t/evil.example", "https://evil.example/"]
)
async def test_login_never_redirects_off_site(new_client: Any, host: Host, target: str) -> None:
    seller, _, _ = await host.eligible_pair()
    url = await host.login_url(seller)
    browser: TestClient[Any, Any] = await new_client()
    resp = await browser.get(
        url[url.index("/login") :], params={"next": target}, allow_redirects=False
    )
    assert resp.status == 302
    assert resp.headers["Location"] == "/inbox"


async def test_login_keeps_a_same_site_next(new_client: Any, host: Host) -> None:
    seller, _, thread = await host.eligible_pair()
    url = await host.login_url(seller)
    browser: TestClient[Any, Any] = await new_client()
    resp = await browser.get(
        url[url.index("/login") :],
        params={"next": f"/inbox/threads/{thread}"},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == f"/inbox/threads/{thread}"
