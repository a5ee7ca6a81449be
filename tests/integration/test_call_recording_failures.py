"""No unrecorded call, through the real service: the staging folder is a real, size-limited
tmpfs (mounted by the test, as root; CI fails if it cannot be mounted).

- A disk that fills mid-call ends the call for both (``failed`` / ``recording_failed``).
- A call over its staging budget ends the same way.
- A node whose staging is below its free-space floor is not ready and refuses new calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.media.staging_space import STAGING_LOW_WORDS
from server.settings import Settings
from tests.support.rtc_client import CallHarness
from tests.support.service import make_settings
from tests.support.tools import fill_file_system, small_tmpfs

pytestmark = [pytest.mark.integration, pytest.mark.needs_ffmpeg]

TMPFS_BYTES = 16 * 1024 * 1024
FLOOR_BYTES = 4 * 1024 * 1024


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "data" / "recording-staging", TMPFS_BYTES) as path:
        yield path


@pytest.fixture
def settings(tmp_path: Path, staging: Path, request: pytest.FixtureRequest) -> Settings:
    overrides: dict[str, Any] = {"staging_min_free_bytes": FLOOR_BYTES}
    overrides.update(getattr(request, "param", {}))
    settings = make_settings(tmp_path, **overrides)
    assert settings.recording_staging_dir == staging.resolve()
    return settings


async def assert_ended_recording_failed(calls: CallHarness, call_id: str, *people: Any) -> None:
    row = await calls.ended(call_id, *(p.ws for p in people), timeout=15)
    assert (row.end_reason, row.end_detail) == ("failed", "recording_failed")
    for p in people:  # both people were told, and why
        (ended,) = [m for m in p.ws.log if m["type"] == "call_state" and m["state"] == "ended"]
        assert (ended["end_reason"], ended["detail"]) == ("failed", "recording_failed")


async def test_a_staging_disk_that_fills_mid_call_ends_the_call_for_both(
    calls: CallHarness, staging: Path
) -> None:
    call_id, seller, buyer = await calls.connected_call()
    media = calls.local_media(call_id)
    await calls.progress.wait_for(
        lambda: media.bridge.stats().frames_to_sink > 60, "the call is being recorded"
    )
    # Another writer fills the disk: the recorder's next writes fail with ENOSPC.
    fill_file_system(staging)
    await assert_ended_recording_failed(calls, call_id, seller, buyer)


@pytest.mark.parametrize("settings", [{"staging_bytes_per_call": 200_000}], indirect=True)
async def test_a_call_over_its_staging_budget_ends_for_both(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    # ~1 Mbit/s each way: 200 kB is well under two seconds of the two recordings.
    await assert_ended_recording_failed(calls, call_id, seller, buyer)


async def test_a_full_staging_disk_makes_the_node_unready_and_refuses_new_calls(
    calls: CallHarness, staging: Path
) -> None:
    client = calls.host.client
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["checks"]["recording_staging"] == "ok"

    filler = fill_file_system(staging, leave_bytes=FLOOR_BYTES // 2)
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["checks"]["recording_staging"] == "error: StagingBelowFreeSpaceFloor"
    assert body["checks"]["database"] == "ok"

    seller_id, _buyer_id, thread_id = await calls.host.eligible_pair()
    seller = await calls.participant(seller_id)
    error = await seller.ws.error(
        "start_call", "unavailable", thread_id=thread_id, recording_notice_accepted=True
    )
    assert error["message"] == STAGING_LOW_WORDS
    assert not calls.service.live_call_ids

    # Space comes back: ready again, and calls start.
    filler.unlink()
    resp = await client.get("/readyz")
    assert resp.status == 200
    started = await seller.ws.ok("start_call", thread_id=thread_id, recording_notice_accepted=True)
    assert started["type"] == "call_started"
    await seller.ws.ok("cancel_call", call_id=started["call_id"])
    await asyncio.wait_for(calls.service.settled(), 10)
