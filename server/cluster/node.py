"""This node's identity and liveness, and noticing nodes that died.

Every node writes a heartbeat to its row in ``nodes`` (PostgreSQL in a cluster) every
``HEARTBEAT_S``. The database, not Redis, is the truth about liveness: a Redis outage must
not make nodes declare each other dead. A node whose heartbeat is older than
``DEAD_AFTER_S`` is dead to the others; each survivor hands it to ``on_dead_node``, which
ends its live calls under the fencing epoch (``server.calls.reaper``), so the calls end
exactly once even when several survivors notice at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import utcnow
from server.db.models import Call, Node
from server.eligibility_snapshots import LIVE_CALL_STATES

log = logging.getLogger(__name__)

HEARTBEAT_S: Final = 2.0
DEAD_AFTER_S: Final = 8.0
NODE_ID_FILE: Final = "node-id"


def resolve_node_id(configured: str | None, data_dir: Path) -> str:
    """The configured id, else the one kept in the data dir (made once): a node restarted
    on its data dir is the same node, and recovers what it left there."""
    if configured:
        return configured
    path = data_dir / NODE_ID_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    node_id = "n-" + secrets.token_hex(5)
    path.write_text(node_id + "\n")
    return node_id


DeadNodeHandler = Callable[[str], Awaitable[None]]


class NodeRegistry:
    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        node_id: str,
        address: str,
        on_dead_node: DeadNodeHandler,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        dead_after_s: float = DEAD_AFTER_S,
    ) -> None:
        self._db = db
        self.node_id = node_id
        self._address = address
        self._on_dead_node = on_dead_node
        self._heartbeat_s = heartbeat_s
        self._dead_after = timedelta(seconds=dead_after_s)
        self._task: asyncio.Task[None] | None = None
        self.dead_nodes: set[str] = set()

    async def start(self) -> None:
        now = utcnow()
        async with self._db() as session, session.begin():
            row = await session.get(Node, self.node_id)
            if row is None:
                session.add(
                    Node(id=self.node_id, address=self._address, started_at=now, heartbeat_at=now)
                )
            else:
                row.address = self._address
                row.started_at = now
                row.heartbeat_at = now
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"node-heartbeat-{self.node_id}"
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self._beat()
                await self._check_others()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node heartbeat or liveness check failed; retrying")

    async def _beat(self) -> None:
        now = utcnow()
        async with self._db() as session, session.begin():
            result = await session.execute(
                update(Node).where(Node.id == self.node_id).values(heartbeat_at=now)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                # Removed by hand (or by a node that thought this one gone for good): put
                # it back, or the others would take this node for dead.
                session.add(
                    Node(id=self.node_id, address=self._address, started_at=now, heartbeat_at=now)
                )

    async def _check_others(self) -> None:
        cutoff = utcnow() - self._dead_after
        async with self._db() as session:
            stale = set(
                (
                    await session.scalars(
                        select(Node.id).where(Node.heartbeat_at < cutoff, Node.id != self.node_id)
                    )
                ).all()
            )
            # Live calls whose owner has no row at all (it was removed by hand) are
            # orphans too.
            owners = set(
                (
                    await session.scalars(
                        select(Call.owner_node)
                        .where(Call.state.in_(LIVE_CALL_STATES), Call.owner_node.is_not(None))
                        .distinct()
                    )
                ).all()
            )
            known = set((await session.scalars(select(Node.id))).all())
        dead = stale | {o for o in owners if o is not None and o not in known}
        dead.discard(self.node_id)
        for node_id in sorted(dead):
            if node_id not in self.dead_nodes:
                log.warning("node %s stopped answering", node_id)
            await self._on_dead_node(node_id)
        back = self.dead_nodes - dead
        for node_id in back:
            log.info("node %s is back", node_id)
        self.dead_nodes = dead

    async def aclose(self) -> None:
        """Leave the cluster: stop the heartbeat and remove this node's row (its calls
        were ended by the shutdown before)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            async with self._db() as session, session.begin():
                await session.execute(delete(Node).where(Node.id == self.node_id))
        except Exception:
            log.exception("could not remove this node's row at shutdown")
