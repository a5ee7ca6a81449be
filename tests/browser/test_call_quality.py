"""Signal bars on the call screen, in real Chromium on a perfect loopback link.

During the warm-up the bars say "measuring" (never a false "fair" or "poor" while the
browser's bandwidth estimate climbs); then both people's own bars read "good", each sees
the other's bars through the server (``connection_quality`` → ``peer_connection_quality``),
and the raw numbers appear only when asked for ("Connection details").
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.calls import MEDIA_TIMEOUT_MS, accept_from_banner, call_screen, start_call
from tests.browser.support import People, Service, screenshot

pytestmark = pytest.mark.browser

# Every level the bars show, from the moment the call screen opens: recorded in the page.
RECORD_LEVELS = """() => {
  const seen = [];
  const watch = (selector, into) => {
    const element = document.querySelector(selector);
    into.push(element.dataset.quality);
    new MutationObserver(() => into.push(element.dataset.quality)).observe(element, {
      attributes: true, attributeFilter: ["data-quality"],
    });
  };
  window.qualitySeen = { own: [], peer: [] };
  watch("#call-screen [data-call-quality]", window.qualitySeen.own);
  watch("#call-screen [data-peer-quality]", window.qualitySeen.peer);
}"""


def collapsed(levels: list[str]) -> list[str]:
    out: list[str] = []
    for level in levels:
        if not out or out[-1] != level:
            out.append(level)
    return out


async def test_bars_warm_up_then_read_good_on_both_sides(service: Service, people: People) -> None:
    buyer = await people.sign_in(service, "buyer-vera")
    seller = await people.sign_in(service, "seller-sam")
    await start_call(seller)
    await seller.evaluate(RECORD_LEVELS)
    await accept_from_banner(buyer)
    await buyer.evaluate(RECORD_LEVELS)
    pages: list[tuple[Page, str]] = [(seller, "Vera VID"), (buyer, "Sam Seller")]
    for page, peer in pages:
        screen = call_screen(page, peer)
        await expect(screen.locator("[data-call-status]")).to_have_text(
            "Connected", timeout=MEDIA_TIMEOUT_MS
        )
    # Right after connecting, still warming up: "measuring", not a level.
    own = call_screen(seller, "Vera VID").locator("[data-call-quality]")
    await expect(own).to_have_attribute("data-quality", "unknown")
    await expect(own).to_contain_text("Your connection: measuring…")

    for page, peer in pages:
        screen = call_screen(page, peer)
        own = screen.locator("[data-call-quality]")
        await expect(own).to_have_attribute("data-quality", "good", timeout=MEDIA_TIMEOUT_MS)
        await expect(own).to_have_text("Your connection: good")
        # The other person's bars, relayed by the server.
        theirs = screen.locator("[data-peer-quality]")
        await expect(theirs).to_have_attribute("data-quality", "good", timeout=MEDIA_TIMEOUT_MS)
        await expect(theirs).to_have_text(f"{peer}'s connection: good")

    # Raw numbers only on demand.
    screen = call_screen(seller, "Vera VID")
    numbers = screen.locator("[data-quality-details]")
    await expect(numbers).to_be_hidden()
    await screen.get_by_text("Connection details").click()
    await expect(numbers).to_be_visible()
    await expect(numbers).to_contain_text("round trip")
    await expect(numbers).to_contain_text("packet loss")
    await expect(numbers).to_contain_text("Mbit/s available to send")
    await screenshot(seller, "call-screen-quality-details")

    # From the first sample on, the bars went from "measuring" straight to "good": no
    # false "fair" or "poor" during the warm-up, on either side, for either link.
    for page, _ in pages:
        seen: Any = await page.evaluate("() => window.qualitySeen")
        assert collapsed(seen["own"]) == ["unknown", "good"], seen
        assert collapsed(seen["peer"]) == ["unknown", "good"], seen


async def test_quality_levels_follow_the_numbers(service: Service, people: People) -> None:
    page = await people.page(service)
    await page.goto("/login")
    levels: Any = await page.evaluate(
        """async () => {
          const m = await import("/static/call.js");
          const perfect = { rtt: 0.002, loss: 0, jitter: 0.001, availableBitrate: 2_500_000,
                            sendingVideo: true };
          const settle = [];
          let state = { shown: "good", worseStreak: 0 };
          for (const reading of ["fair", "good", "fair", "fair", "poor", "poor", "good"]) {
            state = m.settleQuality(state.shown, reading, state.worseStreak);
            settle.push(state.shown);
          }
          return {
            perfect: m.classifyQuality(perfect),
            unknown: m.classifyQuality({ ...perfect, rtt: null, availableBitrate: null }),
            slowRtt: m.classifyQuality({ ...perfect, rtt: 0.3 }),
            awfulRtt: m.classifyQuality({ ...perfect, rtt: 0.8 }),
            someLoss: m.classifyQuality({ ...perfect, loss: 0.03 }),
            heavyLoss: m.classifyQuality({ ...perfect, loss: 0.12 }),
            jitter: m.classifyQuality({ ...perfect, jitter: 0.06 }),
            startEstimate: m.classifyQuality({ ...perfect, availableBitrate: 300_000 }),
            narrow: m.classifyQuality({ ...perfect, availableBitrate: 150_000 }),
            tiny: m.classifyQuality({ ...perfect, availableBitrate: 80_000 }),
            voiceOnlyNarrow: m.classifyQuality({ ...perfect, availableBitrate: 80_000,
                                                 sendingVideo: false }),
            settle,
          };
        }"""
    )
    assert levels == {
        "perfect": "good",
        "unknown": "unknown",
        "slowRtt": "fair",
        "awfulRtt": "poor",
        "someLoss": "fair",
        "heavyLoss": "poor",
        "jitter": "fair",
        "startEstimate": "good",
        "narrow": "fair",
        "tiny": "poor",
        "voiceOnlyNarrow": "good",
        # One worse sample is not a drop; two in a row are; better shows at once.
        "settle": ["good", "good", "good", "fair", "fair", "poor", "good"],
    }
