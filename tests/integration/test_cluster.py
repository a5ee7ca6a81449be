"""Two nodes on one PostgreSQL and one Redis, each a real ``inboxcall serve`` process with
its own media worker: calls across nodes, presence, races, a node killed with SIGKILL,
and Redis going away mid-run. aiortc peers in this process play the browsers."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from sqlalchemy import func, select

from server.db.models import Call, Recording
from tests.support.cluster import Cluster, wait_until
from tests.support.encoded_media import EncodedClip
from tests.support.postgres import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.rtc_client import Participant
from tests.support.service import AUTH

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODE_LOSS_NOTICE_S = 15.0


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    postgres, redis = PostgresServer(), RedisServer()
    await asyncio.gather(postgres.start(), redis.start())
    cluster = Cluster(tmp_path, postgres, redis)
    try:
        await cluster.start("a", "b")
        yield cluster
    finally:
        await cluster.close()
        await redis.close()
        await postgres.stop()


async def call_across(
    cluster: Cluster, clip: EncodedClip, suffix: str, *, owner: str = "a", other: str = "b"
) -> tuple[str, Participant, Participant]:
    """Seller's socket on ``owner`` calls; the buyer answers and sends media via ``other``."""
    a, b = cluster.nodes[owner], cluster.nodes[other]
    seller_id, buyer_id, thread_id = await cluster.seed_pair(a, suffix)
    seller_person = await cluster.person(seller_id, a)
    buyer_person = await cluster.person(buyer_id, b)
    seller = cluster.participant(await seller_person.socket(a), clip)
    buyer = cluster.participant(await buyer_person.socket(b), clip)
    started = await seller.ws.ok("start_call", thread_id=thread_id, recording_notice_accepted=True)
    call_id = str(started["call_id"])
    await buyer.ws.wait_for("incoming_call", lambda m: m["call_id"] == call_id)
    await seller.connect_media(call_id)
    await buyer.ws.ok("accept_call", call_id=call_id, recording_notice_accepted=True)
    await buyer.connect_media(call_id)
    for p in (seller, buyer):
        await p.ws.call_state("active", timeout=20)
    await cluster.progress.wait_for(
        lambda: all(len(p.media.received["video"]) >= 30 for p in (seller, buyer)),
        "video both ways across nodes",
        timeout=20,
    )
    return call_id, seller, buyer


async def test_a_call_between_people_on_two_nodes(cluster: Cluster, clip: EncodedClip) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    seller_id, buyer_id, thread_id = await cluster.seed_pair(a, "1")
    seller_person = await cluster.person(seller_id, a)
    buyer_person = await cluster.person(buyer_id, b)  # signed in on b, used on both
    seller_ws = await seller_person.socket(a)
    await seller_ws.ok("subscribe_presence", thread_ids=[thread_id])
    first = await seller_ws.wait_for("presence", lambda m: m["user_id"] == buyer_id)
    assert first["online"] is False
    # Presence crosses nodes: the buyer comes online on b, the seller on a hears it.
    buyer_ws = await buyer_person.socket(b)
    online = await seller_ws.wait_for("presence", lambda m: m["user_id"] == buyer_id)
    assert online["online"] is True
    buyer_on_a = await buyer_person.socket(a)

    seller = cluster.participant(seller_ws, clip)
    buyer = cluster.participant(buyer_ws, clip)
    started = await seller.ws.ok("start_call", thread_id=thread_id, recording_notice_accepted=True)
    call_id = str(started["call_id"])
    for ws in (buyer_ws, buyer_on_a):  # every socket of the buyer rings, wherever it is
        await ws.wait_for("incoming_call", lambda m: m["call_id"] == call_id)
    await seller.connect_media(call_id)
    await buyer.ws.ok("accept_call", call_id=call_id, recording_notice_accepted=True)
    await buyer.connect_media(call_id)  # the offer goes from b to the owner a and back
    for ws in (seller.ws, buyer.ws, buyer_on_a):
        await ws.call_state("active", timeout=20)
    await cluster.progress.wait_for(
        lambda: all(len(p.media.received["video"]) >= 60 for p in (seller, buyer)),
        "2 s of video both ways across nodes",
        timeout=20,
    )
    # Chat from b reaches the seller on a and the buyer's other socket.
    await buyer.ws.ok("chat", call_id=call_id, text="hello from b")
    for ws in (seller.ws, buyer_on_a):
        chat = await ws.wait_for("chat", lambda m: m["call_id"] == call_id)
        assert chat["message"]["text"] == "hello from b"
    await buyer.ws.ok("hang_up", call_id=call_id)
    for ws in (seller.ws, buyer.ws, buyer_on_a):
        ended = await ws.call_state("ended", timeout=10)
        assert (ended["end_reason"], ended["ended_by"]) == ("hung_up", buyer_id)

    async def both_recorded() -> bool:
        async with cluster.db() as session:
            rows = (
                await session.scalars(select(Recording).where(Recording.call_id == call_id))
            ).all()
        return {r.participant_id for r in rows if r.state == "finalised"} == {
            seller_id,
            buyer_id,
        }

    await wait_until(both_recorded, "both recordings stored")
    async with cluster.db() as session:
        row = await session.get(Call, call_id)
        recordings = (
            await session.scalars(select(Recording).where(Recording.call_id == call_id))
        ).all()
    assert row is not None and row.owner_node == "a"
    for rec in recordings:
        with av.open(str(cluster.root / "recordings" / rec.storage_key)) as container:
            assert sum(1 for _ in container.demux(video=0)) > 30

    # The buyer leaves b: the seller on a hears them go offline once every socket is gone.
    await buyer_ws.close()
    await buyer_on_a.close()
    offline = await seller_ws.wait_for(
        "presence", lambda m: m["user_id"] == buyer_id and m["online"] is False
    )
    assert offline["online"] is False


async def test_start_call_racing_on_both_nodes_makes_one_call(
    cluster: Cluster, clip: EncodedClip
) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    for round_ in range(3):
        seller_id, _buyer_id, thread_id = await cluster.seed_pair(a, f"race{round_}")
        seller = await cluster.person(seller_id, a)
        on_a, on_b = await seller.socket(a), await seller.socket(b)
        replies = await asyncio.gather(
            on_a.request("start_call", thread_id=thread_id, recording_notice_accepted=True),
            on_b.request("start_call", thread_id=thread_id, recording_notice_accepted=True),
        )
        kinds = sorted(r["type"] for r in replies)
        assert kinds == ["call_started", "error"], replies
        refused = next(r for r in replies if r["type"] == "error")
        assert refused["error"]["code"] == "ineligible"
        assert [r["code"] for r in refused["error"]["reasons"]] == ["call_already_active"]
        async with cluster.db() as session:
            live = await session.scalar(
                select(func.count())
                .select_from(Call)
                .where(Call.thread_id == thread_id, Call.state == "ringing")
            )
        assert live == 1


async def test_a_killed_node_ends_its_calls_for_the_survivor(
    cluster: Cluster, clip: EncodedClip
) -> None:
    call_id, _seller, buyer = await call_across(cluster, clip, "k")
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    await cluster.kill("a")
    ended = await buyer.ws.call_state("ended", timeout=NODE_LOSS_NOTICE_S + 5)
    assert loop.time() - killed_at <= NODE_LOSS_NOTICE_S
    assert (ended["end_reason"], ended["detail"]) == ("failed", "node_lost")

    # The survivor takes new calls, owned by itself.
    new_call, *_ = await call_across(cluster, clip, "after", owner="b", other="b")
    async with cluster.db() as session:
        row = await session.get(Call, new_call)
        assert row is not None and row.owner_node == "b"
        # Restarted on its data dir, the killed node stores what its worker had recorded.
    await cluster.restart("a")

    async def recovered() -> bool:
        async with cluster.db() as session:
            rows = (
                await session.scalars(select(Recording).where(Recording.call_id == call_id))
            ).all()
        return len(rows) == 2 and {r.state for r in rows} == {"interrupted"}

    await wait_until(recovered, "the killed node's recordings recovered on restart")
    async with cluster.db() as session:
        row = await session.get(Call, call_id)
    assert row is not None
    assert (row.state, row.end_reason, row.end_detail) == ("ended", "failed", "node_lost")


async def test_redis_going_away_loses_nothing(cluster: Cluster, clip: EncodedClip) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    call_id, seller, buyer = await call_across(cluster, clip, "r")
    await cluster.redis.stop()

    async def bus_down(node_name: str) -> bool:
        _, body = await cluster.nodes[node_name].readyz()
        return body["bus"] == "unreachable"

    await wait_until(lambda: bus_down("a"), "node a sees Redis gone")
    # The live call goes on: media flows browser <-> worker, not through Redis.
    before = len(buyer.media.received["video"])
    await cluster.progress.wait_for(
        lambda: len(buyer.media.received["video"]) >= before + 60, "media during the outage"
    )
    # A new call is refused clearly, and nothing is stored for it.
    seller_id, _, thread_id = await cluster.seed_pair(a, "r2")
    other = await cluster.person(seller_id, a)
    ws = await other.socket(a)
    refused = await ws.error(
        "start_call", "unavailable", thread_id=thread_id, recording_notice_accepted=True
    )
    assert "try again" in refused["message"]
    async with cluster.db() as session:
        assert not (await session.scalars(select(Call).where(Call.thread_id == thread_id))).all()
    status, _ = await b.readyz()
    assert status == 200  # pages and live calls still served

    await cluster.redis.start()
    for name in ("a", "b"):
        await wait_until(
            lambda name=name: _bus_ok(cluster, name), f"node {name} back on the bus", timeout=30
        )
    # Commands cross nodes again: the buyer on b hangs up the call owned by a.
    await buyer.ws.ok("hang_up", call_id=call_id)
    ended = await seller.ws.call_state("ended", timeout=10)
    assert ended["end_reason"] == "hung_up"
    # And a new call across the nodes works.
    await call_across(cluster, clip, "r3")


async def _bus_ok(cluster: Cluster, name: str) -> bool:
    _, body = await cluster.nodes[name].readyz()
    return bool(body["bus"] == "ok")


async def test_a_rolling_restart_drops_no_call_of_the_other_node(
    cluster: Cluster, clip: EncodedClip
) -> None:
    """Node b owns the call; the buyer's socket is on a, which restarts (SIGTERM, then up
    again): the call goes on and the buyer re-attaches through the restarted node."""
    call_id, seller, buyer = await call_across(cluster, clip, "roll", owner="b", other="a")
    await cluster.nodes["a"].kill(signal.SIGTERM)
    assert cluster.nodes["a"].process is not None
    assert cluster.nodes["a"].process.returncode == 0
    # The seller on b hears that the buyer's socket went, and the call waits for them.
    lost = await seller.ws.wait_for("peer_connection_state", lambda m: m["state"] == "reconnecting")
    assert lost["user_id"] == buyer.ws.user_id
    before = len(seller.media.received["video"])
    await cluster.progress.wait_for(
        lambda: len(seller.media.received["video"]) >= before + 30,
        "media goes on while the buyer's node restarts",
    )
    restarted = await cluster.restart("a")
    back = await cluster.people[buyer.ws.user_id].socket(restarted)
    state = await back.wait_for("call_state", lambda m: m["call_id"] == call_id)
    assert state["state"] == "active"
    again = await seller.ws.wait_for("peer_connection_state", lambda m: m["state"] == "connected")
    assert again["user_id"] == buyer.ws.user_id
    await back.ok("hang_up", call_id=call_id)
    ended = await seller.ws.call_state("ended")
    assert ended["end_reason"] == "hung_up"


async def test_an_order_placed_through_the_other_node_ends_the_call(
    cluster: Cluster, clip: EncodedClip
) -> None:
    """Eligibility changes reach the call's owner from any node: the host places an order
    through node b while node a owns the call."""
    call_id, seller, buyer = await call_across(cluster, clip, "order")
    b = cluster.nodes["b"]
    host = await cluster.host()
    resp = await host.put(
        f"{b.base}/api/v1/integration/threads/torder",
        json={
            "seller_id": "sorder",
            "buyer_id": "border",
            "initiated_by": "buyer",
            "state": "open",
            "order_placed": True,
            "last_buyer_activity_at": datetime.now(UTC).isoformat(),
        },
        headers=AUTH,
    )
    assert resp.status == 200, await resp.text()
    for ws in (seller.ws, buyer.ws):
        ended = await ws.call_state("ended", timeout=10)
        assert (ended["end_reason"], ended["detail"]) == ("ineligible", "thread_has_order")
    async with cluster.db() as session:
        row = await session.get(Call, call_id)
    assert row is not None and row.end_reason == "ineligible"
