"""Steps of a call as people take them in the pages, shared by the call tests."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Locator, Page, expect

RECORDING_NOTICE = (
    "This call is recorded and may be reviewed for compliance with the Terms of Service. "
    "Don't share phone numbers, e-mail or other contact details."
)
MEDIA_TIMEOUT_MS = 30_000


def initials(name: str) -> str:
    """What the pages' initials avatars show: first and last word's first letters."""
    words = name.split()
    return (words[0][0] + (words[-1][0] if len(words) > 1 else "")).upper()


def call_screen(page: Page, peer_name: str) -> Locator:
    return page.get_by_role("dialog", name=f"Video call with {peer_name}")


async def start_call(
    seller: Page, thread_id: str = "t-eligible", buyer_name: str = "Vera VID"
) -> str:
    """The seller opens the thread, presses the icon, reads the notice, calls; the call id."""
    if not seller.url.endswith(f"/inbox/threads/{thread_id}"):
        await seller.goto(f"/inbox/threads/{thread_id}")
    await seller.get_by_role("button", name="Start video call").click()
    notice = seller.get_by_role("dialog", name=f"Call {buyer_name}?")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text(RECORDING_NOTICE)
    await notice.get_by_role("button", name="Call now").click()
    screen = call_screen(seller, buyer_name)
    await expect(screen).to_be_visible()
    await expect(screen.locator("[data-call-status]")).to_have_text("Calling...")
    # The ringing view: their initials and a countdown; nothing is recorded or timed yet.
    await expect(screen.locator("[data-ringing-initials]")).to_have_text(initials(buyer_name))
    await expect(screen.locator("[data-ring-countdown]")).to_have_text(
        re.compile(r"Ringing, \d+:\d\d left")
    )
    await expect(screen.get_by_text("Recording", exact=True)).to_be_hidden()
    await expect(screen.get_by_role("timer")).to_be_hidden()
    call_id = await seller.evaluate("() => window.inboxcall.call.callId")
    assert isinstance(call_id, str) and call_id
    return call_id


async def incoming_banner(buyer: Page, seller_name: str = "Sam Seller") -> Locator:
    banner = buyer.get_by_role("region", name="Incoming calls").locator(
        "section", has_text=seller_name
    )
    await expect(banner).to_be_visible()
    await expect(banner.get_by_role("heading", name="Incoming video call")).to_be_visible()
    return banner


async def accept_from_banner(buyer: Page, seller_name: str = "Sam Seller") -> Locator:
    """The buyer answers from the banner, in one step: the call screen opens on this page."""
    banner = await incoming_banner(buyer, seller_name)
    accept = banner.get_by_role("button", name="Accept")
    await expect(accept).to_have_accessible_description(RECORDING_NOTICE)
    await accept.click()
    screen = call_screen(buyer, seller_name)
    await expect(screen).to_be_visible()
    return screen


async def expect_ended(page: Page, peer_name: str, words: str | re.Pattern[str]) -> None:
    screen = call_screen(page, peer_name)
    await expect(screen.get_by_role("heading", name="Call ended")).to_be_visible()
    await expect(screen.locator("[data-call-end-reason]")).to_have_text(words)


# --- media, measured in the page from the live RTCPeerConnection ----------------------------

INBOUND_STATS = """async () => {
  const pc = window.inboxcall?.call?.pc;
  if (!pc) return null;
  const out = { framesDecoded: 0, audioPackets: 0, videoPackets: 0 };
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") {
      out.framesDecoded += s.framesDecoded ?? 0;
      out.videoPackets += s.packetsReceived ?? 0;
    }
    if (s.kind === "audio") out.audioPackets += s.packetsReceived ?? 0;
  });
  return out;
}"""


async def inbound(page: Page) -> dict[str, Any]:
    stats = await page.evaluate(INBOUND_STATS)
    assert stats is not None, "no live call in this page"
    return dict(stats)


async def expect_media_flowing(page: Page) -> None:
    """The other person's video plays (size known, time advancing, frames decoded rising)
    and their audio arrives (inbound audio packets rising)."""
    video = "document.querySelector('[data-their-video]')"
    await page.wait_for_function(
        f"() => {{ const v = {video}; return v && v.videoWidth > 0 && v.readyState >= 2; }}",
        timeout=MEDIA_TIMEOUT_MS,
    )
    before_time = await page.evaluate(f"() => {video}.currentTime")
    before = await inbound(page)
    await page.wait_for_function(
        f"t => {video}.currentTime > t + 1.0 && !{video}.paused",
        arg=before_time,
        timeout=MEDIA_TIMEOUT_MS,
    )
    await page.wait_for_function(
        f"""async (b) => {{
          const now = await ({INBOUND_STATS})();
          return now && now.framesDecoded > b.framesDecoded + 10
            && now.audioPackets > b.audioPackets + 20;
        }}""",
        arg=before,
        timeout=MEDIA_TIMEOUT_MS,
        polling=250,
    )
