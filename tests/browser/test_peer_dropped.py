"""The other person's connection, shown (real Chromium, DESIGN.md section 8 "WebSocket
additions" and "Call screen").

The buyer runs in a Chromium process of their own (a persistent profile in its own user
data dir), so the test can kill exactly that browser with SIGKILL, as a crash or a dead
laptop battery would: the seller's screen says "Reconnecting" within 5 s, and when the
buyer does not come back the call ends with the grace period left out of its duration.
Closing the buyer's tab instead hangs up at once: the seller's screen shows the end
within 5 s.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from server.appkeys import DB
from server.db.models import Call
from tests.browser.calls import (
    MEDIA_TIMEOUT_MS,
    accept_from_banner,
    call_screen,
    expect_ended,
    start_call,
)
from tests.browser.conftest import ServiceFactory
from tests.browser.support import CHROMIUM_FLAGS, DEMO_NAMES, DESKTOP, People, Service
from tests.support.processes import alive

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTICE_MS = 5_000
GRACE_S = 8.0


class OwnBrowser:
    """A buyer's browser in a Chromium process of its own, which the test may kill."""

    def __init__(self, profile: Path, context: BrowserContext) -> None:
        self.profile = profile
        self.context = context
        self.killed: list[int] = []

    def pids(self) -> list[int]:
        """Every process whose command line names this browser's profile."""
        marker = str(self.profile).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
        return found

    def kill(self) -> None:
        pids = self.pids()
        assert pids, "the buyer's Chromium is not running"
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.killed.append(pid)


@pytest.fixture
async def own_browser(
    chromium: str, tmp_path: Path, service_factory: ServiceFactory
) -> AsyncIterator[OwnBrowser]:
    profile = tmp_path / "buyer-profile"
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, args=CHROMIUM_FLAGS, viewport=DESKTOP
        )
        browser = OwnBrowser(profile, context)
        try:
            yield browser
        finally:
            if not browser.killed:
                await context.close()
            else:
                for pid in browser.pids():
                    os.kill(pid, signal.SIGKILL)
    # Nothing outlives the test: the killed processes are gone (reaped by Playwright).
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in browser.killed) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def sign_in_buyer(own: OwnBrowser, service: Service) -> Page:
    page = await own.context.new_page()
    await page.goto(f"{service.base_url}/login")
    await page.get_by_role("link", name=f"Sign in as {DEMO_NAMES['buyer-vera']}").click()
    await page.wait_for_url(lambda url: "/login" not in url)
    return page


async def connected(seller: Page, buyer: Page) -> None:
    await start_call(seller)
    await accept_from_banner(buyer)
    for page, peer in ((seller, "Vera VID"), (buyer, "Sam Seller")):
        await expect(call_screen(page, peer).locator("[data-call-status]")).to_have_text(
            "Connected", timeout=MEDIA_TIMEOUT_MS
        )


async def test_a_killed_browser_shows_reconnecting_and_the_grace_is_not_counted(
    service_factory: ServiceFactory, people: People, own_browser: OwnBrowser
) -> None:
    service = await service_factory(reconnect_grace_seconds=GRACE_S)
    buyer = await sign_in_buyer(own_browser, service)
    seller = await people.sign_in(service, "seller-sam")
    await connected(seller, buyer)
    active_from = time.monotonic()
    screen = call_screen(seller, "Vera VID")
    # Talk for a few seconds (the timer runs), then the buyer's browser dies.
    await expect(screen.get_by_role("timer")).to_have_text(re.compile(r"0:0[3-9]"), timeout=15_000)
    own_browser.kill()
    killed_at = time.monotonic()

    status = screen.get_by_role("status").first
    await expect(status).to_contain_text("Reconnecting", timeout=NOTICE_MS)
    await expect(status).to_contain_text(
        re.compile(r"Vera VID's connection dropped; reconnecting\. The call waits for them")
    )
    await expect(screen.locator(".their-side")).to_have_css("filter", "grayscale(1)")

    # She never comes back: the call ends when the grace runs out ...
    await expect_ended(
        seller,
        "Vera VID",
        "Vera VID's connection was lost and did not come back in time, so the call ended.",
    )
    call_id = await seller.evaluate("() => window.inboxcall.call.callId")
    async with service.app[DB]() as session:
        call = await session.get(Call, call_id)
    assert call is not None and call.end_reason == "failed"
    assert call.end_detail == "participant_lost"
    # ... and the dead air is not in its duration: it counts up to the kill, not the end.
    assert call.duration_seconds is not None and call.connected_at and call.ended_at
    talked = killed_at - active_from
    ran = (call.ended_at - call.connected_at).total_seconds()
    assert ran >= GRACE_S, (ran, call.duration_seconds)
    assert talked - 3 <= call.duration_seconds <= talked + 2, (talked, call.duration_seconds)
    await expect(screen.locator("[data-call-end-duration]")).to_have_text(
        f"The call lasted 0:{int(call.duration_seconds):02d}."
    )


async def test_closing_the_tab_ends_the_call_on_the_other_screen(
    service_factory: ServiceFactory, people: People, own_browser: OwnBrowser
) -> None:
    service = await service_factory()
    buyer = await sign_in_buyer(own_browser, service)
    seller = await people.sign_in(service, "seller-sam")
    await connected(seller, buyer)
    await buyer.close(run_before_unload=True)
    await expect(
        call_screen(seller, "Vera VID").get_by_role("heading", name="Call ended")
    ).to_be_visible(timeout=NOTICE_MS)
    await expect_ended(seller, "Vera VID", "Vera VID hung up.")
