"""The node's place in the cluster: its id and the bus, as a ``cleanup_ctx``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.appkeys import BUS, NODE_ID, SETTINGS
from server.cluster.bus import Bus, LocalBus
from server.cluster.node import resolve_node_id
from server.cluster.redis_bus import RedisBus

log = logging.getLogger(__name__)


async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    node_id = resolve_node_id(settings.node_id, settings.data_dir)
    bus: Bus
    if settings.redis_url:
        bus = RedisBus(settings.redis_url, node_id)
        log.info("node %s joins the cluster through Redis", node_id)
    else:
        bus = LocalBus(node_id)
    await bus.start()
    # Not a readiness check: with Redis down the node still serves pages and its live
    # calls (only new calls wait), so a load balancer must keep sending it traffic.
    app[NODE_ID] = node_id
    app[BUS] = bus
    try:
        yield
    finally:
        await bus.aclose()
