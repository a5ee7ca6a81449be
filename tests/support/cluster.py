"""A cluster on loopback for tests: a real PostgreSQL, a real redis-server and nodes that
are real ``inboxcall serve`` processes (each with its own media workers and data dir,
all sharing the database, Redis and one recordings folder); people are aiohttp sessions
whose sockets can open on any node."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.session import make_engine, make_session_factory
from server.settings import Settings
from tests.support.encoded_media import EncodedClip
from tests.support.media_peers import Progress
from tests.support.postgres import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.rtc_client import Participant
from tests.support.service_process import (
    ServiceProcess,
    free_port,
    open_socket,
    seed_eligible_pair,
    sign_in,
)
from tests.support.ws_client import WsClient


class Person:
    """One signed-in person: a cookie jar that works on every node (no sticky sessions)."""

    def __init__(self, user_id: str, session: aiohttp.ClientSession) -> None:
        self.user_id = user_id
        self.session = session
        self.sockets: list[WsClient] = []

    async def socket(self, node: ServiceProcess) -> WsClient:
        ws = await open_socket(self.session, node.base)
        self.sockets.append(ws)
        return ws


class Cluster:
    def __init__(self, root: Path, postgres: PostgresServer, redis: RedisServer) -> None:
        self.root = root
        self.postgres = postgres
        self.redis = redis
        self.nodes: dict[str, ServiceProcess] = {}
        self.people: dict[str, Person] = {}
        self.participants: list[Participant] = []
        self.progress = Progress()
        self._host: aiohttp.ClientSession | None = None
        self._engine = make_engine(Settings(database_url=postgres.url).resolved_database_url)
        self.db: async_sessionmaker[AsyncSession] = make_session_factory(self._engine)

    def node(self, name: str, *, workers: int = 1, port: int | None = None) -> ServiceProcess:
        node = ServiceProcess(
            self.root / name,
            port or free_port(),
            INBOXCALL_DATABASE_URL=self.postgres.url,
            INBOXCALL_REDIS_URL=self.redis.url,
            INBOXCALL_RECORDINGS_DIR=str(self.root / "recordings"),
            INBOXCALL_MEDIA_WORKERS=str(workers),
            INBOXCALL_NODE_ID=name,
            # A restarted node can take a while to serve again on a loaded machine: the
            # call must still be waiting for the person whose socket was on it.
            INBOXCALL_RECONNECT_GRACE_SECONDS="90",
        )
        self.nodes[name] = node
        return node

    async def start(self, *names: str) -> None:
        """Start the nodes at the same moment (they migrate the empty database once)."""
        await asyncio.gather(*(self.node(n).start() for n in names))

    async def restart(self, name: str) -> ServiceProcess:
        old = self.nodes[name]
        node = self.node(name, port=old.port)
        await node.start()
        return node

    async def host(self) -> aiohttp.ClientSession:
        if self._host is None:
            self._host = aiohttp.ClientSession()
        return self._host

    async def seed_pair(self, via: ServiceProcess, suffix: str) -> tuple[str, str, str]:
        """An eligible seller and VID buyer with a fresh buyer-initiated thread."""
        return await seed_eligible_pair(await self.host(), via.base, suffix)

    async def person(self, user_id: str, via: ServiceProcess) -> Person:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        await sign_in(session, via.base, user_id)
        person = Person(user_id, session)
        self.people[user_id] = person
        return person

    def participant(self, ws: WsClient, clip: EncodedClip) -> Participant:
        p = Participant(ws, clip, self.progress)
        self.participants.append(p)
        return p

    async def kill(self, name: str) -> None:
        await self.nodes[name].kill(signal.SIGKILL)

    async def close(self) -> None:
        for p in self.participants:
            for peer in p.peers:
                await peer.close()
        for person in self.people.values():
            for ws in person.sockets:
                await ws.close()
            await person.session.close()
        if self._host is not None:
            await self._host.close()
        for name, node in self.nodes.items():
            if node.process is not None and node.process.returncode is None:
                await node.kill(signal.SIGKILL)
            # Kept beside the test's data for a look after a failure.
            (self.root / f"{name}.log").write_text("".join(node.output))
        await self._engine.dispose()


async def wait_until(check: Any, what: str, timeout: float = 20) -> None:
    """Poll an async or plain check (a few times a second) until it holds."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(what)  # pragma: no cover
