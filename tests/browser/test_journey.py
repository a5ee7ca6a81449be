"""The whole journey in real Chromium: a seller calls a VID buyer from the inbox, they talk
with real media through the server, chat, one turns the camera off, they hang up; then a
reviewer finds the sampled call, replays both recordings in sync, seeks with the timeline,
records a verdict, and the call's audit trail shows the replay."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from server.appkeys import DB
from server.db.models import Call
from tests.browser.calls import (
    INBOUND_STATS,
    MEDIA_TIMEOUT_MS,
    RECORDING_NOTICE,
    accept_from_banner,
    call_screen,
    expect_ended,
    expect_media_flowing,
    inbound,
    incoming_banner,
    start_call,
)
from tests.browser.conftest import ServiceFactory
from tests.browser.support import People, Service, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE_NUMBER_TEXT = "Easier by phone: call me on +1 415 555 0134"


async def the_call_connects(seller: Page, buyer: Page) -> None:
    for page, peer in ((seller, "Vera VID"), (buyer, "Sam Seller")):
        screen = call_screen(page, peer)
        await expect(screen.locator("[data-call-status]")).to_have_text(
            "Connected", timeout=MEDIA_TIMEOUT_MS
        )
        await expect(screen.get_by_text("Recording", exact=True)).to_be_visible()
        await expect(screen.get_by_label("Your video")).to_be_visible()
        await expect(screen.get_by_label("Their video")).to_be_visible()


async def test_whole_journey(service_factory: ServiceFactory, people: People) -> None:
    service = await service_factory(review_sample_rate=1.0)

    # --- the buyer is in the inbox; the seller opens the eligible thread and calls ---
    buyer = await people.sign_in(service, "buyer-vera")
    await expect(buyer).to_have_url(re.compile(r"/inbox$"))
    seller = await people.sign_in(service, "seller-sam")
    await seller.goto("/inbox")
    await seller.get_by_role("link", name=re.compile("Brand video for a product launch")).click()
    await expect(seller.locator(".thread-who .presence")).to_have_text("Online")
    call_id = await start_call(seller)

    # --- the buyer gets the ring with the recording notice, and answers in one step ---
    banner = await incoming_banner(buyer)
    await expect(banner).to_contain_text(RECORDING_NOTICE)
    await screenshot(buyer, "incoming-call")
    await screenshot(seller, "call-screen-ringing")
    await accept_from_banner(buyer)
    await expect(buyer).to_have_url(re.compile(r"/inbox$"))

    # --- both see and hear the other ---
    await the_call_connects(seller, buyer)
    await expect_media_flowing(seller)
    await expect_media_flowing(buyer)
    for page, peer in ((seller, "Vera VID"), (buyer, "Sam Seller")):
        screen = call_screen(page, peer)
        await expect(screen.locator("[data-call-quality]")).to_have_attribute(
            "data-quality", re.compile("^(good|fair|poor)$")
        )
        await expect(screen.get_by_role("timer")).not_to_have_text("0:00")
    await screenshot(seller, "call-screen-active-seller")
    await screenshot(buyer, "call-screen-active-buyer")

    # --- the buyer turns the camera off: the seller sees the voice-only view ---
    buyer_screen = call_screen(buyer, "Sam Seller")
    seller_screen = call_screen(seller, "Vera VID")
    await buyer_screen.get_by_role("button", name="Turn camera off").click()
    await expect(buyer_screen.get_by_role("button", name="Turn camera on")).to_be_visible()
    voice_only = seller_screen.locator("[data-their-cover]")
    await expect(voice_only).to_be_visible()
    await expect(voice_only).to_have_text(re.compile("Vera VID turned their camera off"))
    await screenshot(seller, "call-screen-voice-only")
    # ... and the seller still hears her.
    await expect_audio_rising(seller)

    # --- the seller mutes and unmutes: the buyer is told ---
    await seller_screen.get_by_role("button", name="Mute microphone").click()
    await expect(seller_screen.get_by_role("button", name="Unmute microphone")).to_be_visible()
    await expect(buyer_screen.locator("[data-peer-muted]")).to_have_attribute(
        "aria-label", "Sam Seller muted their microphone."
    )
    await seller_screen.get_by_role("button", name="Unmute microphone").click()
    await expect(buyer_screen.locator("[data-peer-muted]")).to_be_hidden()

    # --- a chat message with a phone number: the warning ---
    await seller_screen.get_by_role("textbox", name="Message").fill(PHONE_NUMBER_TEXT)
    await seller_screen.get_by_role("button", name="Send").click()
    await expect(seller_screen.locator("[data-chat-warning]")).to_contain_text(
        re.compile("contact details", re.IGNORECASE)
    )
    await expect(seller_screen.get_by_role("textbox", name="Message")).to_have_value("")
    received = buyer_screen.locator(".chat-line", has_text="+1 415 555 0134")
    await expect(received).to_be_visible()
    await expect(received.get_by_role("note")).to_have_text("Contact details detected")
    await buyer_screen.get_by_role("textbox", name="Message").fill("Let's keep it here, thanks.")
    await buyer_screen.get_by_role("button", name="Send").click()
    await expect(seller_screen.locator(".chat-line", has_text="keep it here")).to_be_visible()
    await screenshot(seller, "call-screen-chat-warning")

    # --- hang up: both pages end, each saying why ---
    await seller_screen.get_by_role("button", name="Hang up").click()
    await expect_ended(seller, "Vera VID", "You hung up.")
    await expect_ended(buyer, "Sam Seller", "Sam Seller hung up.")
    # One duration everywhere: the end screen, the thread and the review queue agree.
    stored = await call_duration_text(service, call_id)
    for page, peer in ((seller, "Vera VID"), (buyer, "Sam Seller")):
        await expect(call_screen(page, peer).locator("[data-call-end-duration]")).to_have_text(
            f"The call lasted {stored}."
        )
    await screenshot(buyer, "call-ended-buyer")
    await buyer_screen.get_by_role("button", name="Back to the conversation").click()
    await expect(buyer).to_have_url(re.compile(r"/inbox/threads/t-eligible$"))
    await expect(
        buyer.get_by_role("list", name="Messages").locator(
            ".call-note", has_text=f"Video call · {stored}"
        )
    ).to_have_count(1)
    await screenshot(buyer, "thread-after-call")

    # --- the reviewer finds the call, claims it, replays both sides in sync ---
    reviewer = await people.sign_in(service, "reviewer-rey")
    await expect(reviewer).to_have_url(re.compile(r"/review$"))
    item = reviewer.locator(f'.queue-item[data-call-id="{call_id}"]')
    await expect(item).to_contain_text("Sam Seller called Vera VID")
    await expect(item).to_contain_text("Contact details in chat")
    await expect(item).to_contain_text(stored)
    await screenshot(reviewer, "review-queue")
    await item.get_by_role("button", name="Claim").click()
    await expect(
        reviewer.get_by_role("heading", name=re.compile("Sam Seller \\(seller\\)"))
    ).to_be_visible()
    videos = reviewer.locator("#players video")
    await expect(videos).to_have_count(2, timeout=MEDIA_TIMEOUT_MS)
    await expect(reviewer.locator("#transcript li.hit mark", has_text="+1 415")).to_have_text(
        "+1 415 555 0134"
    )

    await reviewer.get_by_role("button", name="Play").click()
    await expect(reviewer.get_by_role("button", name="Pause")).to_be_visible()
    await reviewer.wait_for_function(
        """() => {
          const players = window.inboxcall.review.players() ?? [];
          return players.length === 2
            && players.every((p) => !p.paused && p.time > p.offset + 0.8);
        }""",
        timeout=MEDIA_TIMEOUT_MS,
    )
    assert await in_sync(reviewer)

    # A timeline marker seeks both recordings to the event (the buyer's camera going off).
    marker = reviewer.locator('.timeline-marker[data-kind="camera_off"]')
    await expect(marker).to_have_count(1)
    target = float(await marker.get_attribute("data-offset") or "nan")
    await reviewer.get_by_role("button", name="Pause").click()
    await marker.click()
    await reviewer.wait_for_function(
        "t => Math.abs(window.inboxcall.review.clock() - t) < 0.3", arg=target, timeout=10_000
    )
    await reviewer.wait_for_function(
        """t => (window.inboxcall.review.players() ?? []).every(
             (p) => p.offset > t || Math.abs(p.time - t) < 0.5)""",
        arg=target,
        timeout=10_000,
    )
    assert await in_sync(reviewer)
    await screenshot(reviewer, "review-call")

    # --- the verdict, and the audit trail shows the replay ---
    form = reviewer.locator("#verdict-form")
    await form.get_by_role("radio", name=re.compile("Off-platform contact")).check()
    await form.get_by_role("radio", name=re.compile("Sam Seller")).check()
    await form.get_by_role("textbox", name="Notes").fill("Asked to move to the phone.")
    await reviewer.get_by_role("button", name="Submit verdict").click()
    await expect(reviewer.locator("#verdict-status")).to_contain_text(
        "Verdict recorded: Off-platform contact"
    )
    audit = reviewer.get_by_role("list", name="Audit trail")
    await expect(audit.locator('li[data-action="recording.replay"]')).to_have_count(2)
    await expect(audit).to_contain_text("Rey Reviewer replayed the recording of Vera VID")
    await expect(audit).to_contain_text("Rey Reviewer replayed the recording of Sam Seller")
    await expect(audit.locator('li[data-action="review.verdict"]')).to_have_count(1)
    await screenshot(reviewer, "review-verdict")


async def call_duration_text(service: Service, call_id: str) -> str:
    """The stored duration as the pages write it ("0:14"), once the call's end is stored."""
    async with service.app[DB]() as session:
        call = await session.get(Call, call_id)
    assert call is not None and call.duration_seconds is not None
    seconds = int(call.duration_seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


async def expect_audio_rising(page: Page) -> None:
    before = await inbound(page)
    await page.wait_for_function(
        f"async (b) => {{ const n = await ({INBOUND_STATS})(); "
        "return n && n.audioPackets > b.audioPackets + 20; }",
        arg=before,
        timeout=MEDIA_TIMEOUT_MS,
        polling=250,
    )


async def in_sync(reviewer: Page) -> bool:
    """Both recordings show the same moment of the call: their files' timestamps are on
    the call's shared clock, so both players' times agree with the transport's clock."""
    players = await reviewer.evaluate("() => window.inboxcall.review.players()")
    clock = await reviewer.evaluate("() => window.inboxcall.review.clock()")
    assert len(players) == 2, players
    started = [p for p in players if p["offset"] <= clock]
    assert started, (clock, players)
    for p in started:
        assert abs(p["time"] - clock) < 0.5, (clock, players)
    return True
