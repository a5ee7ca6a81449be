"""``/metrics`` on its own port, fetched over HTTP and parsed with prometheus_client's
parser before, during and after a real call through the bridge (real aiortc peers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from server.metrics import loop_lag
from server.settings import Settings
from tests.support.metrics import scrape, total, value
from tests.support.rtc_client import CallHarness
from tests.support.service import make_settings
from tests.support.service_process import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(loop_lag, "SAMPLE_INTERVAL_SECONDS", 0.02)
    return make_settings(tmp_path, metrics_port=free_port())


async def test_metrics_move_with_a_real_call(calls: CallHarness, settings: Settings) -> None:
    before = await scrape(settings)
    assert value(before, "inboxcall_calls_live") == 0
    assert value(before, "inboxcall_calls_started_total") == 0
    assert value(before, "inboxcall_calls_ended_total", reason="hung_up") == 0
    assert (
        value(before, "inboxcall_media_frames_forwarded_total", worker="inproc", kind="video") == 0
    )
    assert value(before, "inboxcall_recordings_stored_total") == 0

    call_id, seller, buyer = await calls.connected_call()
    during = await scrape(settings)
    assert value(during, "inboxcall_calls_live") == 1
    assert value(during, "inboxcall_calls_started_total") == 1
    assert value(during, "inboxcall_media_calls", worker="inproc") == 1
    assert value(during, "inboxcall_ws_connections") == 2
    forwarded_during = {
        kind: value(during, "inboxcall_media_frames_forwarded_total", worker="inproc", kind=kind)
        for kind in ("audio", "video")
    }
    assert forwarded_during["video"] > 0

    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    after = await scrape(settings)

    assert value(after, "inboxcall_calls_live") == 0
    assert value(after, "inboxcall_media_calls", worker="inproc") == 0
    assert value(after, "inboxcall_calls_started_total") == 1
    assert value(after, "inboxcall_calls_ended_total", reason="hung_up") == 1
    assert total(after, "inboxcall_calls_ended_total") == 1
    for kind in ("audio", "video"):
        # The call's final counters are kept once its bridge is gone: never lower.
        forwarded = value(
            after, "inboxcall_media_frames_forwarded_total", worker="inproc", kind=kind
        )
        assert forwarded > 0
        assert forwarded >= forwarded_during[kind]
    assert value(after, "inboxcall_recordings_stored_total") == 2
    assert total(after, "inboxcall_recordings_failed_total") == 0
    assert value(after, "inboxcall_recorder_queue_depth", worker="inproc") == 0
    assert value(after, "inboxcall_ws_connections_opened_total") == 2


async def test_event_loop_lag_is_sampled_into_a_histogram(
    server: TestServer, settings: Settings
) -> None:
    # Sampled by the service's own task (interval patched small below); wait for samples.
    async with asyncio.timeout(10):
        while (
            value(samples := await scrape(settings), "inboxcall_event_loop_lag_seconds_count") < 3
        ):
            await asyncio.sleep(0.05)
    buckets = {
        float(dict(labels)["le"]): v
        for (name, labels), v in samples.items()
        if name == "inboxcall_event_loop_lag_seconds_bucket"
    }
    assert sorted(buckets)[-1] == float("inf")
    assert buckets[float("inf")] == value(samples, "inboxcall_event_loop_lag_seconds_count")
    counts = [buckets[le] for le in sorted(buckets)]
    assert counts == sorted(counts)
    assert value(samples, "inboxcall_event_loop_lag_seconds_sum") >= 0


async def test_the_public_port_does_not_serve_metrics(
    server: TestServer, settings: Settings
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.make_url("/metrics")) as resp:
            assert resp.status == 404
        assert (await scrape(settings))[("inboxcall_calls_live", frozenset())] == 0


def test_the_metrics_port_may_not_be_the_public_port(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="never served on the public port"):
        make_settings(tmp_path, port=9100, metrics_port=9100)


async def test_metrics_are_off_without_a_port(tmp_path: Path) -> None:
    from server.app import create_app
    from server.appkeys import MEDIA_METRICS

    settings = make_settings(tmp_path)
    assert settings.metrics_port == 0
    app = create_app(settings)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        assert MEDIA_METRICS not in app
    finally:
        await test_server.close()
