"""A throwaway coturn (``turnserver``, Debian's coturn package) on loopback for the tests.

REST-style authentication with a static secret, as in production (deploy/coturn/), but on
127.0.0.1 only, TCP and UDP listeners without TLS, no CLI, and loopback peers allowed:
coturn refuses to relay to 127.0.0.0/8 by default, and the media worker it relays to
listens on loopback in the tests. Killed at ``close``; keeps nothing outside its temp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.tools import require_tool


def _free_tcp_and_udp_port() -> int:
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free for both TCP and UDP")


class TurnServer:
    def __init__(self, *, max_bps: int | None = None) -> None:
        self.binary = require_tool("turnserver")
        self.root = Path(tempfile.mkdtemp(prefix="inboxcall-coturn-"))
        self.port = _free_tcp_and_udp_port()
        self.secret = secrets.token_urlsafe(24)
        self.max_bps = max_bps
        self.process: asyncio.subprocess.Process | None = None

    @property
    def tcp_url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=tcp"

    @property
    def udp_url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    @property
    def log_text(self) -> str:
        path = self.root / "turn.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self) -> None:
        args = [
            "-n",  # no configuration file: everything is on this command line
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            "--min-port=49152",
            "--max-port=65535",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            "--realm=inboxcall.test",
            "--fingerprint",
            "--allow-loopback-peers",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-software-attribute",
            f"--db={self.root / 'turndb'}",
            f"--pidfile={self.root / 'turnserver.pid'}",
            f"--log-file={self.root / 'turn.log'}",
            "--simple-log",
            "--no-stdout-log",
        ]
        if self.max_bps is not None:
            args.append(f"--max-bps={self.max_bps}")
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(30):
            while True:
                if self.process.returncode is not None:
                    raise AssertionError(f"turnserver exited at start-up:\n{self.log_text}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            async with asyncio.timeout(30):
                await self.process.wait()
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_turn_server(*, max_bps: int | None = None) -> AsyncIterator[TurnServer]:
    """A started ``TurnServer``, killed on the way out whatever happened."""
    server = TurnServer(max_bps=max_bps)
    try:
        await server.start()
        yield server
    finally:
        await server.close()
