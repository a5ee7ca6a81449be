"""The reviewer console in real Chromium, on a finished call with two real WebM recordings
that start at different moments: queue and filters, claim, replay in sync, seek from the
timeline, the transcript's detector hits, the verdict and the audit trail."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from recorder.sampling import MandatoryReviewReason
from server.appkeys import DB, RECORDING_STORAGE
from server.clock import utcnow
from server.db.models import Call, CallEvent, Message, Recording
from tests.browser.recordings import write_webm
from tests.browser.support import People, Service, screenshot

pytestmark = pytest.mark.browser

CALL_ID = "c-review-console"
SELLER_START, SELLER_LENGTH = 0.0, 8.0
BUYER_START, BUYER_LENGTH = 1.5, 6.0
CAMERA_OFF_AT = 4.0


async def seed_reviewable_call(service: Service, tmp_path: Path) -> None:
    """A hung-up call sampled for review, with contact details in its chat."""
    connected = utcnow() - timedelta(minutes=10)
    storage = service.app[RECORDING_STORAGE]
    files = {}
    for who, length, shade in (
        ("seller-sam", SELLER_LENGTH, 70),
        ("buyer-vera", BUYER_LENGTH, 150),
    ):
        path = tmp_path / f"{who}.webm"
        write_webm(path, length, shade)
        key = f"calls/{CALL_ID}/{who}.webm"
        await storage.put(key, path)
        files[who] = (key, path.stat().st_size)

    def at(seconds: float) -> object:
        return connected + timedelta(seconds=seconds)

    async with service.app[DB]() as session, session.begin():
        session.add(
            Call(
                id=CALL_ID,
                thread_id="t-eligible",
                seller_id="seller-sam",
                buyer_id="buyer-vera",
                state="ended",
                end_reason="hung_up",
                ended_by="seller-sam",
                created_at=connected - timedelta(seconds=3),
                connected_at=connected,
                ended_at=at(SELLER_LENGTH),
                duration_seconds=SELLER_LENGTH,
                seller_consent_at=connected - timedelta(seconds=3),
                buyer_consent_at=connected - timedelta(seconds=1),
                contact_details_detected=True,
                review_required=True,
                sample_rate=0.1,
                sample_key_id="k1",
                sample_draw=0.73,
                sampled=False,
                mandatory_reasons=[MandatoryReviewReason.CONTACT_DETAILS_IN_CHAT.value],
            )
        )
        await session.flush()
        for who, start, length in (
            ("seller-sam", SELLER_START, SELLER_LENGTH),
            ("buyer-vera", BUYER_START, BUYER_LENGTH),
        ):
            key, size = files[who]
            session.add(
                Recording(
                    call_id=CALL_ID,
                    participant_id=who,
                    storage_key=key,
                    state="finalised",
                    mime_type="video/webm",
                    video_codec="vp8",
                    audio_codec="opus",
                    start_offset=start,
                    duration=length,
                    size=size,
                    finalised_at=at(SELLER_LENGTH + 1),
                )
            )
        for kind, who, seconds, data in (
            ("joined", "seller-sam", 0.0, {}),
            ("joined", "buyer-vera", BUYER_START, {}),
            ("camera_off", "buyer-vera", CAMERA_OFF_AT, {}),
            ("chat", "seller-sam", 5.0, {"flags": ["contact_details"]}),
            ("left", "seller-sam", SELLER_LENGTH, {"detail": "hung_up"}),
        ):
            session.add(
                CallEvent(call_id=CALL_ID, kind=kind, user_id=who, at=at(seconds), data=data)
            )
        for who, seconds, text, flags in (
            ("seller-sam", 5.0, "Call me on +1 415 555 0134", ["contact_details"]),
            ("buyer-vera", 6.0, "No thanks, let's stay here.", []),
        ):
            session.add(
                Message(
                    thread_id="t-eligible",
                    sender_id=who,
                    kind="call_chat",
                    text=text,
                    flags=flags,
                    call_id=CALL_ID,
                    created_at=at(seconds),
                )
            )


async def positions(reviewer: Page) -> list[float]:
    """Where each player is on the call's shared clock (the files' own timestamps)."""
    players = await reviewer.evaluate("() => window.inboxcall.review.players()")
    return [p["time"] for p in players]


async def test_review_console(service: Service, people: People, tmp_path: Path) -> None:
    await seed_reviewable_call(service, tmp_path)
    reviewer = await people.sign_in(service, "reviewer-rey")
    await expect(reviewer).to_have_url(re.compile(r"/review$"))

    # --- the queue and its filters ---
    item = reviewer.locator(f'.queue-item[data-call-id="{CALL_ID}"]')
    await expect(item).to_contain_text("Sam Seller called Vera VID")
    await expect(item).to_contain_text("Contact details in chat")
    filters = reviewer.locator("#queue-filters")
    await filters.get_by_role("combobox", name="Why in the queue").select_option("sampled")
    await filters.get_by_role("button", name="Apply filters").click()
    await expect(reviewer.locator("#queue-status")).to_have_text("No calls match these filters.")
    await expect(item).to_have_count(0)
    await filters.get_by_role("combobox", name="Why in the queue").select_option("mandatory")
    await filters.get_by_role("button", name="Apply filters").click()
    await expect(item).to_be_visible()

    # --- claim: the call opens ---
    await item.get_by_role("button", name="Claim").click()
    await expect(
        reviewer.get_by_role("heading", name="Sam Seller (seller) and Vera VID (buyer)")
    ).to_be_focused()
    await expect(item).to_contain_text("Claimed by you")
    # Nothing left to claim: the holder opens the call.
    await expect(item.get_by_role("button", name="Claim")).to_have_count(0)
    await expect(item.get_by_role("button", name="Open")).to_be_visible()
    # The queue shows the call's connected duration, the one the thread shows (0:08).
    await expect(item).to_contain_text("0:08")
    # The verdict form says what a violation does before it is submitted.
    await expect(reviewer.locator("#verdict-form")).to_contain_text(
        "A violation (off-platform contact or abusive behaviour) restricts the account you name"
    )
    await expect(reviewer.locator("#players video")).to_have_count(2)
    # The transcript highlights what the detector found.
    hit = reviewer.get_by_role("list", name="Chat transcript").locator("li.hit")
    await expect(hit.locator("mark", has_text="+1 415")).to_have_text("+1 415 555 0134")
    await expect(hit.locator("mark", has_text="+1 415")).to_have_attribute(
        "title", "Detected: phone"
    )
    await expect(hit.get_by_role("note")).to_contain_text("Contact details detected")

    # --- play both, in sync on one clock ---
    await reviewer.get_by_role("button", name="Play").click()
    await expect(reviewer.get_by_role("button", name="Pause")).to_be_visible()
    await reviewer.wait_for_function(
        f"""() => {{
          const p = window.inboxcall.review.players();
          return p.length === 2 && p.every((x) => !x.paused) && p[1].time > {BUYER_START} + 0.5
            && window.inboxcall.review.clock() > {BUYER_START} + 0.5;
        }}""",
        timeout=20_000,
    )
    seller_at, buyer_at = await positions(reviewer)
    assert abs(seller_at - buyer_at) < 0.5, (seller_at, buyer_at)
    await reviewer.get_by_role("button", name="Pause").click()
    await expect(reviewer.get_by_role("button", name="Play")).to_be_visible()
    await reviewer.wait_for_function(
        "() => window.inboxcall.review.players().every((x) => x.paused)"
    )

    # --- a timeline marker seeks both recordings to the event ---
    marker = reviewer.get_by_role(
        "button", name=re.compile("Jump to 0:04: Vera VID turned the camera off")
    )
    await marker.click()
    await reviewer.wait_for_function(
        f"""() => window.inboxcall.review.players().every(
              (x) => Math.abs(x.time - {CAMERA_OFF_AT}) < 0.3)""",
        timeout=10_000,
    )
    await expect(reviewer.locator("#position")).to_have_text("0:04 / 0:08")
    # The seek slider moves both too.
    await reviewer.get_by_label("Position in the call").fill("2")
    await reviewer.wait_for_function(
        """() => window.inboxcall.review.players().every(
              (x) => Math.abs(x.time - 2) < 0.3 || (x.offset > 2 && x.time === x.offset))""",
        timeout=10_000,
    )
    await screenshot(reviewer, "review-console-call")

    # --- the verdict: a violation needs the person; errors are words ---
    form = reviewer.locator("#verdict-form")
    await form.get_by_role("radio", name=re.compile("^Off-platform contact")).check()
    await reviewer.get_by_role("button", name="Submit verdict").click()
    await expect(form.locator("#verdict-error")).to_have_text(
        "Say which participant broke the rules."
    )
    await form.get_by_role("radio", name="Sam Seller (seller)").check()
    await form.get_by_role("textbox", name="Notes").fill("Asked the buyer to phone him.")
    await reviewer.get_by_role("button", name="Submit verdict").click()
    await expect(form.locator("#verdict-status")).to_have_text(
        "Verdict recorded: Off-platform contact. Notes: Asked the buyer to phone him."
    )
    await expect(reviewer.get_by_role("button", name="Submit verdict")).to_be_disabled()

    # --- the audit trail shows the claim, both replays and the verdict ---
    audit = reviewer.get_by_role("list", name="Audit trail")
    await expect(audit.locator('li[data-action="review.claim"]')).to_have_count(1)
    await expect(audit.locator('li[data-action="recording.replay"]')).to_have_count(2)
    await expect(audit).to_contain_text("Rey Reviewer replayed the recording of Sam Seller")
    await expect(audit).to_contain_text("Rey Reviewer replayed the recording of Vera VID")
    await expect(audit).to_contain_text("Rey Reviewer recorded the verdict: Off-platform contact")
    # The call left the open queue.
    await expect(item).to_have_count(0)
    await screenshot(reviewer, "review-console-verdict")
