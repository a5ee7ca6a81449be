"""A small UDP network shaper on loopback: a relay with a token bucket, for tests and benches.

Run in its own process (``UdpShaperProcess``), so that its pacing does not share an
event loop (or the GIL) with the server and clients it sits between, as a real network
would not. It listens on one loopback port and relays to one target (the server's media
port): every client address it hears from gets its own upstream socket, so the server
sees the shaper, and a client that only knows the shaper's port can only reach the
server through it.

Each direction (``up``: client to server, ``down``: server to client) has a rate
(bits per second, None: unlimited), a drop-tail queue bounded in time (``queue_ms``: a
datagram that would wait longer is dropped, as a router's buffer would), and a random
loss share. Settings change while it runs (``set``), and ``stats`` reports datagrams and
bytes relayed and dropped per direction.

Control protocol (JSON lines): the process prints ``{"port": N}`` once listening, reads
``{"op": "set", "direction": "down", "rate_bps": 400000, "queue_ms": 200, "loss": 0}``
or ``{"op": "stats"}`` on stdin and answers one JSON line for each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, cast

MAX_QUEUE_DATAGRAMS = 4096


@dataclass
class DirectionStats:
    datagrams: int = 0
    bytes: int = 0
    dropped_queue: int = 0
    dropped_loss: int = 0


@dataclass
class Direction:
    rate_bps: int | None = None
    queue_ms: float = 200.0
    loss: float = 0.0
    stats: DirectionStats = field(default_factory=DirectionStats)
    queue: deque[tuple[float, bytes, Any]] = field(default_factory=deque)
    queued_bytes: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, shaper: Shaper, client: tuple[str, int]) -> None:
        self.shaper = shaper
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.shaper.enqueue("down", data, self.client)


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, shaper: Shaper) -> None:
        self.shaper = shaper

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.shaper.from_client(data, addr)


class Shaper:
    def __init__(self, target: tuple[str, int], seed: int = 1) -> None:
        self.target = target
        self.directions = {"up": Direction(), "down": Direction()}
        self._random = random.Random(seed)
        self._upstreams: dict[tuple[str, int], _Upstream] = {}
        self._opening: dict[tuple[str, int], list[bytes]] = {}
        self.listener: asyncio.DatagramTransport | None = None
        self._pacers: list[asyncio.Task[None]] = []
        self._openers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Listener(self), local_addr=("127.0.0.1", 0)
        )
        self.listener = transport
        # The process exits with its loop; the shaper owns its pacers until then.
        self._pacers = [
            loop.create_task(self._pace(name), name=f"shaper-{name}") for name in self.directions
        ]
        return int(transport.get_extra_info("sockname")[1])

    def from_client(self, data: bytes, client: tuple[str, int]) -> None:
        if client not in self._upstreams and client not in self._opening:
            self._opening[client] = []
            self._openers.add(asyncio.get_running_loop().create_task(self._open_upstream(client)))
        if client in self._opening:
            self._opening[client].append(data)
            return
        self.enqueue("up", data, client)

    async def _open_upstream(self, client: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _Upstream(self, client), remote_addr=self.target
        )
        self._upstreams[client] = protocol
        self._openers.discard(asyncio.current_task())  # type: ignore[arg-type]
        for data in self._opening.pop(client):
            self.enqueue("up", data, client)

    def enqueue(self, name: str, data: bytes, client: tuple[str, int]) -> None:
        direction = self.directions[name]
        if direction.loss and self._random.random() < direction.loss:
            direction.stats.dropped_loss += 1
            return
        if direction.rate_bps is not None:
            # Drop-tail: what is queued ahead drains at the rate; waiting longer than the
            # queue allows means a full buffer.
            waiting_ms = (direction.queued_bytes + len(data)) * 8000 / direction.rate_bps
            if waiting_ms > direction.queue_ms or len(direction.queue) >= MAX_QUEUE_DATAGRAMS:
                direction.stats.dropped_queue += 1
                return
        direction.queue.append((asyncio.get_running_loop().time(), data, client))
        direction.queued_bytes += len(data)
        direction.wakeup.set()

    async def _pace(self, name: str) -> None:
        direction = self.directions[name]
        loop = asyncio.get_running_loop()
        free_at = loop.time()
        while True:
            while not direction.queue:
                direction.wakeup.clear()
                await direction.wakeup.wait()
            _, data, client = direction.queue.popleft()
            direction.queued_bytes -= len(data)
            if direction.rate_bps is not None:
                now = loop.time()
                free_at = max(free_at, now) + len(data) * 8 / direction.rate_bps
                if free_at > now:
                    await asyncio.sleep(free_at - now)
            self._send(name, data, client)

    def _send(self, name: str, data: bytes, client: tuple[str, int]) -> None:
        direction = self.directions[name]
        if name == "up":
            upstream = self._upstreams.get(client)
            if upstream is None or upstream.transport is None:
                return
            upstream.transport.sendto(data)
        else:
            assert self.listener is not None
            self.listener.sendto(data, client)
        direction.stats.datagrams += 1
        direction.stats.bytes += len(data)

    def control(self, command: dict[str, Any]) -> dict[str, Any]:
        match command.get("op"):
            case "set":
                direction = self.directions[str(command["direction"])]
                if "rate_bps" in command:
                    rate = command["rate_bps"]
                    direction.rate_bps = None if rate is None else int(rate)
                if "queue_ms" in command:
                    direction.queue_ms = float(command["queue_ms"])
                if "loss" in command:
                    direction.loss = float(command["loss"])
                return {"ok": True}
            case "stats":
                return {name: asdict(d.stats) for name, d in self.directions.items()}
        return {"error": f"unknown op {command.get('op')!r}"}


async def _main(target_port: int) -> None:
    shaper = Shaper(("127.0.0.1", target_port))
    port = await shaper.start()
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            answer = shaper.control(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            answer = {"error": str(exc)}
        print(json.dumps(answer), flush=True)


class UdpShaperProcess:
    """The shaper in a child process; ``async with`` starts it and stops it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> UdpShaperProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.udp_shaper",
            "--target-port",
            str(self.target_port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.port = int((await self._read())["port"])
        return self

    async def _read(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        async with asyncio.timeout(10):
            line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the UDP shaper process exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        async with self._lock:
            self._proc.stdin.write((json.dumps(command) + "\n").encode())
            await self._proc.stdin.drain()
            answer = await self._read()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    async def set(
        self,
        direction: str,
        *,
        rate_bps: int | None = None,
        queue_ms: float = 200.0,
        loss: float = 0.0,
    ) -> None:
        await self._ask(
            {
                "op": "set",
                "direction": direction,
                "rate_bps": rate_bps,
                "queue_ms": queue_ms,
                "loss": loss,
            }
        )

    async def stats(self) -> dict[str, DirectionStats]:
        answer = await self._ask({"op": "stats"})
        return {name: DirectionStats(**values) for name, values in answer.items()}

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        if self._proc.returncode is None:
            self._proc.kill()
        await self._proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target-port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.target_port))


if __name__ == "__main__":
    main()
