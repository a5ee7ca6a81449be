"""Driving the service like its real clients do: the host marketplace and signed-in people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.settings import Settings

INTEGRATION_KEY = "test-integration-key"
AUTH = {"Authorization": f"Bearer {INTEGRATION_KEY}"}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "secret_key": "test-secret-key-" + "x" * 16,
        "integration_api_key": INTEGRATION_KEY,
        "host": "127.0.0.1",
        "port": 0,
        # In-process media: these tests look inside the bridge; the media worker tests
        # (tests/integration/test_media_workers.py) run real worker processes.
        "media_workers": 0,
    }
    values.update(overrides)
    return Settings(**values)


class Host:
    """The host marketplace, driving the integration API like the real one would."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def user(self, user_id: str, role: str, **fields: Any) -> dict[str, Any]:
        body = {"role": role, "display_name": fields.pop("display_name", user_id), **fields}
        resp = await self.client.put(
            f"/api/v1/integration/users/{user_id}", json=body, headers=AUTH
        )
        assert resp.status in (200, 201), await resp.text()
        return dict(await resp.json())

    async def thread(
        self, thread_id: str, seller_id: str, buyer_id: str, **fields: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "seller_id": seller_id,
            "buyer_id": buyer_id,
            "initiated_by": "buyer",
            "state": "open",
            "order_placed": False,
            "last_buyer_activity_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        }
        body.update(fields)
        resp = await self.client.put(
            f"/api/v1/integration/threads/{thread_id}", json=body, headers=AUTH
        )
        assert resp.status in (200, 201), await resp.text()
        return dict(await resp.json())

    async def eligible_pair(self, suffix: str = "") -> tuple[str, str, str]:
        seller, buyer, thread = f"seller{suffix}", f"buyer{suffix}", f"thread{suffix}"
        await self.user(seller, "seller", business_program="member")
        await self.user(buyer, "buyer", vid=True)
        await self.thread(thread, seller, buyer)
        return seller, buyer, thread

    async def login_url(self, user_id: str) -> str:
        resp = await self.client.post(
            f"/api/v1/integration/users/{user_id}/login-token", headers=AUTH
        )
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["login_url"])


async def sign_in(client: TestClient[Any, Any], host: Host, user_id: str) -> str:
    """Sign ``client`` in as ``user_id``; answer the session's CSRF token."""
    url = await host.login_url(user_id)
    path = url[url.index("/login") :]
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    me = await client.get("/api/v1/me")
    assert me.status == 200
    return str((await me.json())["csrf_token"])
