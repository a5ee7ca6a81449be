"""The demo data shows every eligibility outcome it promises, through the real endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.demo import DEMO_THREADS, seed_demo
from server.settings import Settings
from tests.support.service import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def demo_settings(tmp_path: Any) -> Settings:
    return make_settings(tmp_path, demo=True)


async def test_demo_threads_show_each_outcome(demo_settings: Settings) -> None:
    await seed_demo(demo_settings)
    await seed_demo(demo_settings)  # idempotent
    async with (
        TestServer(create_app(demo_settings), host="127.0.0.1") as server,
        TestClient(server) as browser,
    ):
        login_page = await browser.get("/login")
        assert login_page.status == 200
        assert "Sign in as Sam Seller" in await login_page.text()
        resp = await browser.get("/login/demo/seller-sam", allow_redirects=True)
        assert resp.status == 200
        assert str(resp.url).endswith("/inbox")
        # The inbox page draws its list from the same JSON the inbox API answers.
        listed = {t["id"] for t in (await (await browser.get("/api/v1/threads")).json())["threads"]}
        seen: set[str] = set()
        for spec in DEMO_THREADS:
            if spec.seller_id != "seller-sam":
                continue
            assert spec.id in listed
            body = await (await browser.get(f"/api/v1/threads/{spec.id}/call-eligibility")).json()
            codes = [r["code"] for r in body["reasons"]]
            if spec.expected == "allowed":
                assert body == {"allowed": True, "reasons": []}
            else:
                assert codes == [spec.expected], spec.id
            seen.add(spec.expected)

    expected_reasons = {
        "allowed",
        "seller_not_in_business_program",
        "buyer_not_vid",
        "account_restricted",
        "thread_not_buyer_initiated",
        "thread_has_order",
        "thread_not_active",
        "buyer_blocked_seller",
    }
    assert {t.expected for t in DEMO_THREADS} == expected_reasons
    assert seen == expected_reasons - {"seller_not_in_business_program"}


async def test_demo_login_is_off_outside_demo_mode(tmp_path: Any) -> None:
    settings = make_settings(tmp_path)
    await seed_demo(settings)
    async with (
        TestServer(create_app(settings), host="127.0.0.1") as server,
        TestClient(server) as browser,
    ):
        assert (await browser.get("/login/demo/seller-sam", allow_redirects=False)).status == 404
        page = await browser.get("/login")
        assert page.status == 401
        assert "Sign in as" not in await page.text()
