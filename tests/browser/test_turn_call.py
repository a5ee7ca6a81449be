"""Real Chromium that may only reach the media through TURN over TCP completes a recorded call.

Chromium runs with ``--webrtc-ip-handling-policy=disable_non_proxied_udp``: it gathers no
host or server-reflexive candidate and may only use a TURN relay over TCP (DESIGN.md
section 8, "TURN"). A real coturn on loopback relays to the media server's host
candidates. Both people see each other, the selected path is a TCP relay, and both
recordings decode without a single error, with timestamps only going up (media over TCP
arrives in bursts). Without TURN configured the same browsers cannot connect, and the
call page says so in words.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import select

from server.appkeys import DB
from server.db.models import Recording
from tests.browser.calls import (
    MEDIA_TIMEOUT_MS,
    accept_from_banner,
    call_screen,
    expect_ended,
    expect_media_flowing,
    start_call,
)
from tests.browser.conftest import ServiceFactory
from tests.browser.support import CHROMIUM_FLAGS, RELAY_ONLY_FLAG, People, Service
from tests.support.tools import require_tool
from tests.support.turn_server import TurnServer, running_turn_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SELECTED_PATH = """async () => {
  const stats = await window.inboxcall.call.pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      pair = stats.get(s.selectedCandidatePairId);
    }
  });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  return { type: local.candidateType, relayProtocol: local.relayProtocol ?? null };
}"""


@pytest.fixture
async def relay_only_browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=chromium, args=[*CHROMIUM_FLAGS, RELAY_ONLY_FLAG]
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def relay_only_people(
    relay_only_browser: Browser, service_factory: ServiceFactory
) -> AsyncIterator[People]:
    crowd = People(relay_only_browser)
    yield crowd
    await crowd.close()
    crowd.assert_no_page_errors()


@pytest.fixture
async def coturn() -> AsyncIterator[TurnServer]:
    async with running_turn_server() as server:
        yield server


async def connect(people: People, service: Service) -> tuple[Page, Page, str]:
    buyer = await people.sign_in(service, "buyer-vera")
    seller = await people.sign_in(service, "seller-sam")
    call_id = await start_call(seller)
    await accept_from_banner(buyer)
    return seller, buyer, call_id


async def stored_recordings(service: Service, call_id: str) -> list[Recording]:
    async with service.app[DB]() as session:
        return list(
            (await session.scalars(select(Recording).where(Recording.call_id == call_id))).all()
        )


def check_recording(path: Path) -> dict[str, int]:
    """Decode every frame (no error allowed) and check each stream's DTS only goes up;
    answers the number of frames decoded per kind."""
    decoded = {"video": 0, "audio": 0}
    errors: list[str] = []
    last_dts: dict[str, int] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            kind = packet.stream.type
            if packet.dts is None or kind not in decoded:
                continue  # the demuxer's flush packets
            previous = last_dts.get(kind)
            if previous is not None and packet.dts <= previous:
                errors.append(f"{kind} dts {packet.dts} after {previous}")
            last_dts[kind] = packet.dts
            try:
                decoded[kind] += len(packet.decode())
            except av.FFmpegError as exc:
                errors.append(f"{kind}: {exc}")
    assert not errors, f"{path.name}: {errors[:10]} ({len(errors)} problems)"
    return decoded


async def test_relay_only_browsers_call_through_turn_and_are_recorded(
    service_factory: ServiceFactory, relay_only_people: People, coturn: TurnServer
) -> None:
    ffprobe = require_tool("ffprobe")
    service = await service_factory(
        turn_urls=coturn.tcp_url, turn_secret=coturn.secret, review_sample_rate=1.0
    )
    seller, buyer, call_id = await connect(relay_only_people, service)
    for page, peer in ((seller, "Vera VID"), (buyer, "Sam Seller")):
        await expect(call_screen(page, peer).locator("[data-call-status]")).to_have_text(
            "Connected", timeout=MEDIA_TIMEOUT_MS
        )
    # Both see (and hear) each other: frames decoding, time advancing, on both sides.
    await expect_media_flowing(seller)
    await expect_media_flowing(buyer)
    for page in (seller, buyer):
        path: Any = await page.evaluate(SELECTED_PATH)
        assert path == {"type": "relay", "relayProtocol": "tcp"}, path
    # Some seconds of bursty TCP-relayed media for the recordings.
    await expect_media_flowing(seller)

    await call_screen(seller, "Vera VID").get_by_role("button", name="Hang up").click()
    await expect_ended(seller, "Vera VID", "You hung up.")
    await expect_ended(buyer, "Sam Seller", "Sam Seller hung up.")

    recordings: list[Recording] = []
    # Stored by the call's teardown, a moment after the end.
    async with asyncio.timeout(30):
        while len(recordings) < 2 or any(r.state != "finalised" for r in recordings):
            await asyncio.sleep(0.2)
            recordings = await stored_recordings(service, call_id)
    assert {r.participant_id for r in recordings} == {"seller-sam", "buyer-vera"}
    for rec in recordings:
        path = service.settings.resolved_recordings_dir / rec.storage_key
        decoded = check_recording(path)
        assert decoded["video"] >= 30 and decoded["audio"] >= 50, decoded
        probe = subprocess.run(
            [ffprobe, "-v", "error", "-show_streams", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode == 0 and not probe.stderr.strip(), probe.stderr


async def test_relay_only_browsers_without_turn_are_told_the_call_cannot_connect(
    service: Service, relay_only_people: People
) -> None:
    seller = await relay_only_people.sign_in(service, "seller-sam")
    await seller.goto("/inbox/threads/t-eligible")
    await seller.get_by_role("button", name="Start video call").click()
    await (
        seller.get_by_role("dialog", name="Call Vera VID?")
        .get_by_role("button", name="Call now")
        .click()
    )
    screen = call_screen(seller, "Vera VID")
    # The browser found no way out at all: the page says why, and what to do.
    warning = screen.locator("[data-media-warning]")
    await expect(warning).to_be_visible(timeout=MEDIA_TIMEOUT_MS)
    await expect(warning).to_have_text(
        "The call cannot connect: your network or browser blocks direct connections, and this"
        " service has no relay (TURN) server to get around that. Try another network, or ask"
        " the site's operator to set up a relay."
    )
    # The server sees the leg fail and ends the call; the warning stays with the end words.
    await expect_ended(
        seller,
        "Vera VID",
        "Your connection could not reach the call server (network problem), so the call ended.",
    )
    await expect(warning).to_be_visible()
