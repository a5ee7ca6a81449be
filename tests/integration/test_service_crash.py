"""SIGKILL a service process that carries a live call; after a restart the call and its
recordings are marked interrupted and the recordings play, losing at most 1 s of media.

Everything real: ``inboxcall serve`` in a child process on loopback, two aiortc peers
sending pre-encoded VP8 + Opus through it, SQLite and the recordings folder on disk.
"""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import av
import pytest
from sqlalchemy import select

from server.db.models import Call, Recording
from server.db.session import make_engine, make_session_factory
from signaling import aiortc_patches
from tests.support.encoded_media import EncodedClip, encoded_clip
from tests.support.media_peers import Progress
from tests.support.rtc_client import Participant
from tests.support.service_process import (
    ServiceProcess,
    free_port,
    open_socket,
    push_eligible_pair,
    sign_in,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_LOSS_S = 1.0


async def test_sigkill_mid_call_then_restart(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    clip: EncodedClip = encoded_clip()
    data_dir = tmp_path / "data"
    first = ServiceProcess(data_dir, free_port())
    services.append(first)
    await first.start()
    base = first.base

    aiortc_patches.limit_ice_host_addresses(["127.0.0.1"])
    progress = Progress()
    jar = {name: aiohttp.CookieJar(unsafe=True) for name in ("host", "seller", "buyer")}
    async with (
        aiohttp.ClientSession(cookie_jar=jar["host"]) as host,
        aiohttp.ClientSession(cookie_jar=jar["seller"]) as seller_http,
        aiohttp.ClientSession(cookie_jar=jar["buyer"]) as buyer_http,
    ):
        await push_eligible_pair(host, base)
        await sign_in(seller_http, base, "s1")
        await sign_in(buyer_http, base, "b1")
        seller = Participant(await open_socket(seller_http, base), clip, progress)
        buyer = Participant(await open_socket(buyer_http, base), clip, progress)
        try:
            started = await seller.ws.ok(
                "start_call", thread_id="t1", recording_notice_accepted=True
            )
            call_id = started["call_id"]
            await buyer.ws.wait_for("incoming_call")
            await seller.connect_media(call_id)
            await buyer.ws.ok("accept_call", call_id=call_id, recording_notice_accepted=True)
            await buyer.connect_media(call_id)
            for p in (seller, buyer):
                await p.ws.call_state("active", timeout=20)
            # About 4 s of media each way through the server, then kill -9.
            await progress.wait_for(
                lambda: all(len(p.media.received["video"]) >= 120 for p in (seller, buyer)),
                "4 s of video both ways",
                timeout=30,
            )
            received_before_kill = {
                "s1": len(buyer.media.received["video"]) / 30.0,
                "b1": len(seller.media.received["video"]) / 30.0,
            }
            await first.kill(signal.SIGKILL)
        finally:
            for p in (seller, buyer):
                for peer in p.peers:
                    await peer.close()
                await p.ws.ws.close()
    aiortc_patches.limit_ice_host_addresses(None)

    second = ServiceProcess(data_dir, free_port())
    services.append(second)
    await second.start()  # start-up finalises what the dead process left
    await second.kill(signal.SIGTERM)
    assert second.process is not None and second.process.returncode == 0

    engine = make_engine(f"sqlite+aiosqlite:///{data_dir / 'inboxcall.sqlite3'}")
    try:
        async with make_session_factory(engine)() as session:
            call = await session.get(Call, call_id)
            recordings = (
                await session.scalars(select(Recording).where(Recording.call_id == call_id))
            ).all()
    finally:
        await engine.dispose()
    assert call is not None
    assert call.state == "ended"
    assert call.interrupted is True
    assert {r.participant_id for r in recordings} == {"s1", "b1"}
    for rec in recordings:
        assert rec.state == "interrupted"
        path = data_dir / "recordings" / rec.storage_key
        with av.open(str(path)) as container:
            kinds = {s.type for s in container.streams}
            assert kinds == {"video", "audio"}
            decoded = 0
            last_video_time = 0.0
            for frame in container.decode(video=0):
                decoded += 1
                last_video_time = float(frame.time or 0.0)
        assert decoded > 0
        # The file reaches to within 1 s of what the other side had received at the kill.
        assert last_video_time >= received_before_kill[rec.participant_id] - MAX_LOSS_S, (
            rec.participant_id,
            last_video_time,
            received_before_kill,
        )
