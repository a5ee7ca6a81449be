"""``inboxcall serve`` as a real child process on loopback, and how tests talk to it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.service import AUTH, INTEGRATION_KEY
from tests.support.ws_client import WsClient

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    def __init__(self, data_dir: Path, port: int, **env: str) -> None:
        self.data_dir = data_dir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = {
            **os.environ,
            "INBOXCALL_HOST": "127.0.0.1",
            "INBOXCALL_PORT": str(self.port),
            "INBOXCALL_DATA_DIR": str(self.data_dir),
            "INBOXCALL_SECRET_KEY": "crash-test-secret-" + "k" * 16,
            "INBOXCALL_INTEGRATION_API_KEY": INTEGRATION_KEY,
            **self.env,
        }
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.cli", "serve",
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = await self.process.stdout.readline()
                assert line, "the service exited before it started serving:\n" + "".join(
                    self.output
                )
                self.output.append(line.decode(errors="replace"))
                if b"is serving on" in line:
                    break
        self._drain = asyncio.create_task(self._drain_output())

    async def _drain_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.append(line.decode(errors="replace"))

    async def kill(self, sig: int) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        async with asyncio.timeout(30):
            await self.process.wait()
        if self._drain is not None:
            await self._drain

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.base}/readyz") as resp,
        ):
            return resp.status, dict(await resp.json())


async def push_eligible_pair(host: aiohttp.ClientSession, base: str) -> None:
    """As the host marketplace: seller ``s1`` (member), VID buyer ``b1``, thread ``t1``."""
    for user_id, body in (
        ("s1", {"role": "seller", "display_name": "S", "business_program": "member"}),
        ("b1", {"role": "buyer", "display_name": "B", "vid": True}),
    ):
        resp = await host.put(f"{base}/api/v1/integration/users/{user_id}", json=body, headers=AUTH)
        assert resp.status == 201, await resp.text()
    resp = await host.put(
        f"{base}/api/v1/integration/threads/t1",
        json={
            "seller_id": "s1",
            "buyer_id": "b1",
            "initiated_by": "buyer",
            "last_buyer_activity_at": datetime.now(UTC).isoformat(),
        },
        headers=AUTH,
    )
    assert resp.status == 201, await resp.text()


async def seed_eligible_pair(
    host: aiohttp.ClientSession, base: str, suffix: str
) -> tuple[str, str, str]:
    """As the host marketplace: seller ``s<suffix>`` (member), VID buyer ``b<suffix>`` and a
    fresh buyer-initiated thread ``t<suffix>``."""
    seller, buyer, thread = f"s{suffix}", f"b{suffix}", f"t{suffix}"
    for user_id, body in (
        (seller, {"role": "seller", "display_name": "S", "business_program": "member"}),
        (buyer, {"role": "buyer", "display_name": "B", "vid": True}),
    ):
        resp = await host.put(f"{base}/api/v1/integration/users/{user_id}", json=body, headers=AUTH)
        assert resp.status in (200, 201), await resp.text()
    resp = await host.put(
        f"{base}/api/v1/integration/threads/{thread}",
        json={
            "seller_id": seller,
            "buyer_id": buyer,
            "initiated_by": "buyer",
            "state": "open",
            "order_placed": False,
            "last_buyer_activity_at": datetime.now(UTC).isoformat(),
        },
        headers=AUTH,
    )
    assert resp.status in (200, 201), await resp.text()
    return seller, buyer, thread


async def sign_in(session: aiohttp.ClientSession, base: str, user_id: str) -> None:
    resp = await session.post(
        f"{base}/api/v1/integration/users/{user_id}/login-token", headers=AUTH
    )
    login_url = (await resp.json())["login_url"]
    assert (await session.get(login_url, allow_redirects=False)).status == 302


async def open_socket(session: aiohttp.ClientSession, base: str) -> WsClient:
    ws = WsClient(await session.ws_connect(f"{base}/api/v1/ws", headers={"Origin": base}))
    ws.hello = await ws.wait_for("hello")
    return ws
