"""A throwaway ``redis-server`` on loopback, from Debian's redis-server package.

It can be stopped and started again on the same port (the "Redis went away" tests); it
keeps nothing on disk.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from pathlib import Path

import redis.asyncio as aioredis

from tests.support.tools import require_tool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self) -> None:
        self.binary = require_tool("redis-server")
        self.root = Path(tempfile.mkdtemp(prefix="inboxcall-redis-"))
        self.port = _free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.root),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            async with asyncio.timeout(30):
                while True:
                    assert self.process.returncode is None, "redis-server exited at start-up"
                    try:
                        await client.ping()
                        return
                    except (OSError, aioredis.ConnectionError):
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            async with asyncio.timeout(30):
                await self.process.wait()
        self.process = None

    async def close(self) -> None:
        await self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
