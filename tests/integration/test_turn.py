"""TURN credentials: minted per signed-in person by ``GET /api/v1/ice-servers`` exactly as the
TURN contract says, accepted by a real coturn on loopback, refused by it once expired."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioice.stun
import aioice.turn
import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.settings import Settings
from server.turn_credentials import turn_credentials
from tests.support.service import Host, make_settings, sign_in
from tests.support.turn_server import TurnServer, running_turn_server

pytestmark = pytest.mark.integration

SECRET = "turn-secret-for-tests"


@pytest.fixture
async def coturn() -> AsyncIterator[TurnServer]:
    async with running_turn_server() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, coturn: TurnServer) -> Settings:
    return make_settings(
        tmp_path,
        turn_urls=f"{coturn.tcp_url}, {coturn.udp_url}",
        turn_secret=coturn.secret,
        turn_credential_ttl_seconds=600,
    )


async def allocate(coturn: TurnServer, username: str, password: str) -> tuple[str, int]:
    """A TURN allocation over TCP with these credentials; the relayed address."""
    transport, _ = await aioice.turn.create_turn_endpoint(
        asyncio.DatagramProtocol,
        server_addr=("127.0.0.1", coturn.port),
        username=username,
        password=password,
        transport="tcp",
    )
    try:
        relayed = transport.get_extra_info("sockname")
        return str(relayed[0]), int(relayed[1])
    finally:
        transport.close()


def test_credentials_follow_coturns_rest_scheme() -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    minted = turn_credentials(
        urls=["turns:turn.example.com:443?transport=tcp"],
        secret=SECRET,
        user_id="buyer:1",
        ttl_seconds=3600,
        now=now,
    )
    expiry = int((now.replace(microsecond=0) + timedelta(hours=1)).timestamp())
    assert minted.username == f"{expiry}:buyer:1"
    expected = hmac.new(SECRET.encode(), minted.username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(minted.credential) == expected
    assert minted.expires_at.timestamp() == expiry


async def test_ice_servers_are_minted_per_person_and_coturn_takes_them(
    signed_in: Any, host: Host, coturn: TurnServer
) -> None:
    await host.user("seller-1", "seller", business_program="member")
    await host.user("buyer-1", "buyer", vid=True)
    client, _ = await signed_in("seller-1")
    resp = await client.get("/api/v1/ice-servers")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    [server] = body["ice_servers"]
    assert server["urls"] == [coturn.tcp_url, coturn.udp_url]
    expiry, user_id = server["username"].split(":", 1)
    assert user_id == "seller-1"
    assert 590 <= int(expiry) - time.time() <= 610
    assert datetime.fromisoformat(body["expires_at"]).timestamp() == int(expiry)
    digest = hmac.new(coturn.secret.encode(), server["username"].encode(), hashlib.sha1)
    assert server["credential"] == base64.b64encode(digest.digest()).decode()

    # A real coturn relays for them ...
    host, port = await allocate(coturn, server["username"], server["credential"])
    assert host == "127.0.0.1" and port > 0

    # ... and refuses expired ones, or ones made with another secret.
    stale = turn_credentials(
        urls=[coturn.tcp_url],
        secret=coturn.secret,
        user_id="seller-1",
        ttl_seconds=60,
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    forged = turn_credentials(
        urls=[coturn.tcp_url],
        secret="not-the-secret",
        user_id="seller-1",
        ttl_seconds=600,
        now=datetime.now(UTC),
    )
    for bad in (stale, forged):
        with pytest.raises(aioice.stun.TransactionFailed):
            await allocate(coturn, bad.username, bad.credential)

    # Another person gets their own.
    other, _ = await signed_in("buyer-1")
    theirs = (await (await other.get("/api/v1/ice-servers")).json())["ice_servers"][0]
    assert theirs["username"].endswith(":buyer-1")


async def test_not_signed_in_gets_nothing(new_client: Any) -> None:
    client = await new_client()
    resp = await client.get("/api/v1/ice-servers")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"]


async def test_without_turn_the_list_is_empty(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "no-turn"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        host = Host(client)
        await host.user("seller-1", "seller", business_program="member")
        await sign_in(client, host, "seller-1")
        resp = await client.get("/api/v1/ice-servers")
        assert resp.status == 200
        assert await resp.json() == {"ice_servers": [], "expires_at": None}
