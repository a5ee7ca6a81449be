"""Media workers: every call's legs, bridge and recorder run in a worker process.

Real worker processes started by the real app; real aiortc peers send pre-encoded media
through them. A worker killed with SIGKILL ends only its own calls (``failed`` /
``media_worker_lost``), their recordings are recovered from staging, and a new worker
serves the next call. A serving process killed with SIGKILL leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import av
import pytest
from sqlalchemy import select

from server.appkeys import MEDIA_HOST
from server.db.models import Recording
from server.media.worker_pool import MediaWorkerPool, RemoteCallMedia
from server.settings import Settings
from tests.support.processes import alive, cpu_seconds, udp_ports_of
from tests.support.rtc_client import CallHarness
from tests.support.service import make_settings
from tests.support.service_process import ServiceProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    overrides = {"media_workers": 2, "review_sample_rate": 1.0, **getattr(request, "param", {})}
    return make_settings(tmp_path, **overrides)


def pool_of(calls: CallHarness) -> MediaWorkerPool:
    pool = calls.app[MEDIA_HOST]
    assert isinstance(pool, MediaWorkerPool)
    return pool


def remote_media(calls: CallHarness, call_id: str) -> RemoteCallMedia:
    live = calls.service.live_call(call_id)
    assert live is not None
    assert isinstance(live.media, RemoteCallMedia)
    return live.media


async def test_a_call_runs_on_one_worker_and_is_recorded_from_active(
    calls: CallHarness, settings: Settings
) -> None:
    call_id, seller, buyer = await calls.connected_call()
    media = remote_media(calls, call_id)
    worker_pid = media.worker.pid
    assert worker_pid is not None and worker_pid != os.getpid()
    # Both legs' server candidates are sockets of that worker process.
    worker_ports = udp_ports_of(worker_pid)
    for p in (seller, buyer):
        ports = p.media.server_candidate_ports()
        assert ports and set(ports) <= worker_ports, (ports, worker_ports)
    await calls.progress.wait_for(
        lambda: all(len(p.media.received["video"]) >= 60 for p in (seller, buyer)),
        "2 s of video both ways through the worker",
    )
    stats = await media.stats()
    assert stats.recorder is not None
    assert stats.bridge.frames_to_sink > 0
    await seller.ws.ok("hang_up", call_id=call_id)
    row = await calls.ended(call_id, seller.ws, buyer.ws)
    async with calls.db() as session:
        recordings = (
            await session.scalars(select(Recording).where(Recording.call_id == call_id))
        ).all()
    assert {r.participant_id for r in recordings} == {seller.ws.user_id, buyer.ws.user_id}
    for rec in recordings:
        assert rec.state == "finalised"
        path = settings.resolved_recordings_dir / rec.storage_key
        with av.open(str(path)) as container:
            video = sum(1 for _ in container.demux(video=0))
        assert video >= 30, rec.participant_id
    # Recorded from the moment the call became active.
    assert row.connected_at is not None and row.recording_started_at is not None
    assert row.connected_at <= row.recording_started_at <= row.ended_at  # type: ignore[operator]


async def test_calls_spread_over_the_workers(calls: CallHarness) -> None:
    first, *_ = await calls.connected_call("a")
    second, *_ = await calls.connected_call("b")
    workers = {remote_media(calls, c).worker.index for c in (first, second)}
    assert workers == {0, 1}


async def test_a_killed_worker_ends_only_its_calls_and_is_replaced(calls: CallHarness) -> None:
    pool = pool_of(calls)
    doomed_call, seller, buyer = await calls.connected_call("a")
    other_call, seller2, buyer2 = await calls.connected_call("b")
    doomed = remote_media(calls, doomed_call).worker
    assert remote_media(calls, other_call).worker is not doomed
    old_pid = doomed.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)

    for ws in (seller.ws, buyer.ws):
        state = await ws.call_state("ended", timeout=10)
        assert (state["end_reason"], state["detail"]) == ("failed", "media_worker_lost")
    await asyncio.wait_for(calls.service.settled(), 15)
    # The other worker's call goes on, its media still flowing.
    assert other_call in calls.service.live_call_ids
    before = len(buyer2.media.received["video"])
    await calls.progress.wait_for(
        lambda: len(buyer2.media.received["video"]) >= before + 30, "the other call goes on"
    )
    # What the dead worker had recorded is recovered, marked interrupted.
    async with calls.db() as session:
        recordings = (
            await session.scalars(select(Recording).where(Recording.call_id == doomed_call))
        ).all()
    assert {r.participant_id for r in recordings} == {seller.ws.user_id, buyer.ws.user_id}
    assert {r.state for r in recordings} == {"interrupted"}
    row = await calls.call_row(doomed_call)
    assert row.review_required is True

    # A new worker takes the dead one's place and serves the next call.
    async with asyncio.timeout(30):
        while not (pool.workers[doomed.index] and pool.workers[doomed.index].ready):  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
    replacement = pool.workers[doomed.index]
    assert replacement is not None and replacement.pid != old_pid
    await seller2.ws.ok("hang_up", call_id=other_call)
    await calls.ended(other_call, seller2.ws, buyer2.ws)
    third, *_ = await calls.connected_call("c")
    assert remote_media(calls, third).worker.alive


@pytest.mark.parametrize("settings", [{"staging_bytes_per_call": 200_000}], indirect=True)
async def test_a_recording_that_fails_in_a_worker_ends_the_call_for_both(
    calls: CallHarness,
) -> None:
    """The recorder in the worker stops (over its staging budget); the ``failure`` event
    reaches the serving process, which ends the call for both people."""
    call_id, seller, buyer = await calls.connected_call()
    row = await calls.ended(call_id, seller.ws, buyer.ws, timeout=15)
    assert (row.end_reason, row.end_detail) == ("failed", "recording_failed")
    for ws in (seller.ws, buyer.ws):
        (ended,) = [m for m in ws.log if m["type"] == "call_state" and m["state"] == "ended"]
        assert (ended["end_reason"], ended["detail"]) == ("failed", "recording_failed")
    # What was recorded up to the budget is stored, marked interrupted.
    async with calls.db() as session:
        recordings = (
            await session.scalars(select(Recording).where(Recording.call_id == call_id))
        ).all()
    assert recordings and {r.state for r in recordings} == {"interrupted"}


async def test_killing_the_serving_process_leaves_no_worker(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    data_dir = tmp_path / "data"
    node = ServiceProcess(data_dir, free_port(), INBOXCALL_MEDIA_WORKERS="2")
    services.append(node)
    await node.start()
    status, body = await node.readyz()
    assert status == 200, body
    workers = body["media"]["workers"]
    assert [w["ready"] for w in workers] == [True, True]
    pids = [int(w["pid"]) for w in workers]
    assert all(alive(pid) for pid in pids)
    # Each worker's load report (once a second) shows there: its CPU time, as the kernel
    # counts it, and its loop lag.
    async with asyncio.timeout(10):
        while not all(w["cpu_seconds"] > 0 for w in workers):
            await asyncio.sleep(0.1)
            workers = (await node.readyz())[1]["media"]["workers"]
    for w in workers:
        assert 0 < w["cpu_seconds"] <= cpu_seconds(w["pid"]) + 0.05, w
        assert 0 <= w["loop_lag_p99_ms"] < 5000, w

    await node.kill(signal.SIGKILL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    while any(alive(pid) for pid in pids) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert not any(alive(pid) for pid in pids), "a media worker outlived its serving process"

    again = ServiceProcess(data_dir, node.port, INBOXCALL_MEDIA_WORKERS="1")
    services.append(again)
    await again.start()
    status, body = await again.readyz()
    assert status == 200 and len(body["media"]["workers"]) == 1, body


@pytest.mark.parametrize(
    "settings",
    [{"media_workers": 1, "media_max_calls_per_worker": 1}],
    indirect=True,
)
async def test_a_full_worker_refuses_a_new_call_clearly(calls: CallHarness) -> None:
    first, *_ = await calls.connected_call("a")
    seller_id, _buyer_id, thread_id = await calls.host.eligible_pair("b")
    seller = await calls.participant(seller_id)
    refused = await seller.ws.error(
        "start_call", "unavailable", thread_id=thread_id, recording_notice_accepted=True
    )
    assert "try again" in refused["message"]
    assert first in calls.service.live_call_ids  # the first call is untouched
