"""Bad input of every kind answers a 4xx JSON error and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support.service import AUTH, Host

pytestmark = pytest.mark.integration


def assert_error_shape(body: Any) -> None:
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)


async def expect(resp: Any, status: int, code: str | None = None) -> None:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert_error_shape(body)
    if code:
        assert body["error"]["code"] == code


async def test_bad_json(client: TestClient[Any, Any]) -> None:
    resp = await client.put(
        "/api/v1/integration/users/u1",
        data=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    await expect(resp, 400, "bad_request")


@pytest.mark.parametrize(
    "body",
    [
        {"role": "buyer"},  # missing display_name
        {"role": "wizard", "display_name": "x"},
        {"role": "buyer", "display_name": "x", "vid": "yes"},
        {"role": "buyer", "display_name": "x", "vid": 1},
        {"role": "buyer", "display_name": "", "vid": True},
        {"role": "buyer", "display_name": "x" * 201},
        {"role": "buyer", "display_name": "x", "unknown_field": 1},
        [],
        "just a string",
        None,
    ],
)
async def test_wrong_types_and_values(client: TestClient[Any, Any], body: Any) -> None:
    resp = await client.put("/api/v1/integration/users/u1", json=body, headers=AUTH)
    assert resp.status in (400, 422)
    assert_error_shape(await resp.json())
    assert (
        await client.post("/api/v1/integration/users/u1/login-token", headers=AUTH)
    ).status == 404


@pytest.mark.parametrize("user_id", ["a b", "../etc", "x" * 129, "ü"])
async def test_bad_ids_in_paths(client: TestClient[Any, Any], user_id: str) -> None:
    resp = await client.put(
        f"/api/v1/integration/users/{user_id}",
        json={"role": "buyer", "display_name": "x"},
        headers=AUTH,
    )
    assert 400 <= resp.status < 500
    assert_error_shape(await resp.json())


async def test_thread_with_unknown_users_or_bad_time(
    client: TestClient[Any, Any], host: Host
) -> None:
    resp = await client.put(
        "/api/v1/integration/threads/t1",
        json={"seller_id": "nobody", "buyer_id": "nobody2", "initiated_by": "buyer"},
        headers=AUTH,
    )
    await expect(resp, 422, "unknown_user")
    await host.eligible_pair()
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-11-22T10:00:00", 12345):
        resp = await client.put(
            "/api/v1/integration/threads/t1",
            json={
                "seller_id": "seller",
                "buyer_id": "buyer",
                "initiated_by": "buyer",
                "last_buyer_activity_at": bad,
            },
            headers=AUTH,
        )
        assert resp.status == 422, bad
    resp = await client.put(
        "/api/v1/integration/threads/t1",
        json={"seller_id": "buyer", "buyer_id": "seller", "initiated_by": "buyer"},
        headers=AUTH,
    )
    await expect(resp, 422, "wrong_role")


async def test_oversized_body(client: TestClient[Any, Any]) -> None:
    resp = await client.put(
        "/api/v1/integration/users/u1",
        data=b'{"role": "buyer", "display_name": "' + b"x" * 200_000 + b'"}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    await expect(resp, 413, "request_too_large")


async def test_oversized_message_text(signed_in: Any, host: Host) -> None:
    _, buyer, thread = await host.eligible_pair()
    client, csrf = await signed_in(buyer)
    resp = await client.post(
        f"/api/v1/threads/{thread}/messages",
        json={"text": "x" * 2001},
        headers={"X-CSRF-Token": csrf},
    )
    await expect(resp, 422, "validation_error")
    resp = await client.post(
        f"/api/v1/threads/{thread}/messages", json={"text": "   "}, headers={"X-CSRF-Token": csrf}
    )
    await expect(resp, 422, "validation_error")
    detail = await (await client.get(f"/api/v1/threads/{thread}")).json()
    assert detail["messages"] == []


async def test_unknown_ids(client: TestClient[Any, Any], signed_in: Any, host: Host) -> None:
    await host.eligible_pair()
    resp = await client.post(
        "/api/v1/integration/threads/nope/messages",
        json={"sender_id": "seller", "text": "hi"},
        headers=AUTH,
    )
    await expect(resp, 404, "not_found")
    resp = await client.post("/api/v1/integration/users/nope/login-token", headers=AUTH)
    await expect(resp, 404, "not_found")
    resp = await client.post(
        "/api/v1/integration/threads/thread/messages",
        json={"sender_id": "stranger", "text": "hi"},
        headers=AUTH,
    )
    await expect(resp, 422, "not_a_party")
    seller, _ = await signed_in("seller")
    await expect(await seller.get("/api/v1/threads/nope"), 404, "not_found")
    await expect(await seller.get("/api/v1/threads/nope/call-eligibility"), 404, "not_found")


async def test_404_and_405_are_json(client: TestClient[Any, Any]) -> None:
    await expect(await client.get("/api/v1/nothing-here"), 404, "not_found")
    resp = await client.post("/healthz")
    await expect(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]


async def test_health_and_openapi(client: TestClient[Any, Any]) -> None:
    assert (await (await client.get("/healthz")).json())["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"]["database"] == "ok"
    spec = await (await client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/threads/{thread_id}/call-eligibility" in spec["paths"]
    assert "/api/v1/integration/users/{user_id}" in spec["paths"]
    assert "UserUpsert" in str(spec["components"])
