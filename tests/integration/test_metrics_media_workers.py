"""Media metrics per media worker: a real call on a real worker process, its counters read
over IPC at scrape time and labelled with the worker's index."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from server.settings import Settings
from tests.support.metrics import scrape, value
from tests.support.rtc_client import CallHarness
from tests.support.service import make_settings
from tests.support.service_process import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, media_workers=1, metrics_port=free_port())


def forwarded(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], kind: str) -> float:
    return value(samples, "inboxcall_media_frames_forwarded_total", worker="0", kind=kind)


async def test_a_call_on_a_media_worker_is_counted_under_its_worker(
    calls: CallHarness, settings: Settings
) -> None:
    before = await scrape(settings)
    assert value(before, "inboxcall_media_worker_up", worker="0") == 1
    assert forwarded(before, "video") == 0
    assert ("inboxcall_media_calls", frozenset({("worker", "inproc")})) not in before

    call_id, seller, buyer = await calls.connected_call()
    during = await scrape(settings)
    assert value(during, "inboxcall_media_calls", worker="0") == 1
    assert value(during, "inboxcall_media_worker_calls", worker="0") == 1
    assert forwarded(during, "video") > 0

    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    after = await scrape(settings)
    assert value(after, "inboxcall_calls_ended_total", reason="hung_up") == 1
    assert value(after, "inboxcall_media_calls", worker="0") == 0
    for kind in ("audio", "video"):
        # Read from the worker as the call ended, before its media closed: never lower.
        assert forwarded(after, kind) >= forwarded(during, kind) > 0
    assert value(after, "inboxcall_recordings_stored_total") == 2


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "inboxcall.json"


async def test_the_grafana_dashboard_asks_only_for_metrics_the_service_exposes(
    server: TestServer, settings: Settings
) -> None:
    # With media workers every name is exposed (media ones labelled by worker).
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    asked = {name for expr in exprs for name in re.findall(r"\binboxcall_\w+", expr)}
    # The worker's loop lag comes with its first load report (every second).
    async with asyncio.timeout(15):
        while "inboxcall_media_worker_loop_lag_seconds" not in (
            exposed := {name for name, _labels in await scrape(settings)}
        ):
            await asyncio.sleep(0.1)
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
        "inboxcall_media_worker_up",
        "inboxcall_media_worker_cpu_seconds_total",
        "inboxcall_media_worker_loop_lag_seconds",
    ):
        assert name in asked, name
