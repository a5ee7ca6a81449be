"""``/metrics`` on its own port, fetched over HTTP and parsed with prometheus_client's
parser before, during and after a real call through the bridge (real aiortc peers)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import loop_lag
from server.settings import Settings
from tests.support.rtc_client import CallHarness
from tests.support.service import make_settings
from tests.support.tools import free_port

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(loop_lag, "SAMPLE_INTERVAL_SECONDS", 0.02)
    return make_settings(tmp_path, metrics_port=free_port())


async def scrape(settings: Settings) -> Samples:
    url = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("inboxcall_"), family.name
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


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


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "inboxcall.json"


async def test_the_grafana_dashboard_asks_only_for_metrics_the_service_exposes(
    server: TestServer, settings: Settings
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    asked = {name for expr in exprs for name in re.findall(r"\binboxcall_\w+", expr)}
    exposed = {name for name, _labels in await scrape(settings)}
    assert asked, "the dashboard has no queries"
    assert asked <= exposed, f"not exposed: {sorted(asked - exposed)}"
    # Every metric the issue names has a panel.
    for name in (
        "inboxcall_calls_live",
        "inboxcall_calls_started_total",
        "inboxcall_calls_ended_total",
        "inboxcall_media_frames_forwarded_total",
        "inboxcall_media_frames_dropped_total",
        "inboxcall_media_keyframe_requests_total",
        "inboxcall_recordings_stored_total",
        "inboxcall_recordings_failed_total",
        "inboxcall_recorder_queue_depth",
        "inboxcall_recorder_frames_dropped_total",
        "inboxcall_ws_connections",
        "inboxcall_ws_slow_consumer_closes_total",
        "inboxcall_ws_rate_limited_messages_total",
        "inboxcall_event_loop_lag_seconds_bucket",
    ):
        assert name in asked, name
