"""The inbox and thread pages in real Chromium: lists, messages, the call icon and its reasons."""

from __future__ import annotations

import contextlib
import re

import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from playwright.async_api import expect

from server.demo import DEMO_THREADS
from signaling.eligibility import REASON_MESSAGES, ReasonCode
from tests.browser.conftest import ServiceFactory
from tests.browser.support import People, Service, screenshot

pytestmark = pytest.mark.browser

# Every ineligible demo thread, as seen by its seller (buyers never see the icon).
INELIGIBLE = [(t.id, t.seller_id, t.expected) for t in DEMO_THREADS if t.expected != "allowed"]


async def test_inbox_and_thread_pages(service: Service, people: People) -> None:
    seller = await people.sign_in(service, "seller-sam")
    await expect(seller).to_have_url(re.compile(r"/inbox$"))
    await expect(seller.get_by_role("heading", name="Inbox", exact=True)).to_be_visible()
    conversations = seller.get_by_role("list", name="Conversations")
    for spec in DEMO_THREADS:
        link = conversations.locator(f'a[href="/inbox/threads/{spec.id}"]')
        if spec.seller_id == "seller-sam":
            await expect(link).to_be_visible()
        else:
            await expect(link).to_have_count(0)
    await screenshot(seller, "inbox-seller")

    await conversations.get_by_role(
        "link", name=re.compile("Brand video for a product launch")
    ).click()
    await expect(seller).to_have_url(re.compile(r"/inbox/threads/t-eligible$"))
    await expect(seller.get_by_role("heading", level=1, name="Vera VID")).to_be_visible()
    messages = seller.get_by_role("list", name="Messages")
    await expect(messages).to_contain_text("Brand video for a product launch")
    await expect(seller.get_by_role("button", name="Start video call")).to_be_visible()

    # The composer posts a message; one with contact details is flagged and explained.
    box = seller.get_by_role("textbox", name="Your message")
    await box.fill("Happy to help with the launch video.")
    await seller.get_by_role("button", name="Send message").click()
    await expect(messages.get_by_text("Happy to help with the launch video.")).to_be_visible()
    await box.fill("Call me on +1 415 555 0134")
    await seller.get_by_role("button", name="Send message").click()
    flagged = messages.locator("li", has_text="+1 415 555 0134")
    await expect(flagged.get_by_role("note")).to_have_text("Contact details detected")
    await expect(seller.locator("#composer-error")).to_contain_text("contact details")
    await expect(box).to_have_value("")
    # Both are stored: a reload shows them.
    await seller.reload()
    await expect(messages.get_by_text("Happy to help with the launch video.")).to_be_visible()
    await screenshot(seller, "thread-seller-eligible")

    # The buyer's inbox and thread.
    buyer = await people.sign_in(service, "buyer-vera")
    await expect(buyer.get_by_role("heading", name="Inbox", exact=True)).to_be_visible()
    await screenshot(buyer, "inbox-buyer")
    await buyer.goto("/inbox/threads/t-eligible")
    await expect(
        buyer.get_by_role("list", name="Messages").get_by_text(
            "Happy to help with the launch video."
        )
    ).to_be_visible()
    await expect(buyer.get_by_role("button", name="Start video call")).to_have_count(0)
    await expect(buyer.get_by_role("button", name="Block seller")).to_be_visible()
    await screenshot(buyer, "thread-buyer")


@pytest.mark.parametrize(("thread_id", "viewer", "reason"), INELIGIBLE)
async def test_call_icon_disabled_and_reason_written(
    service: Service, people: People, thread_id: str, viewer: str, reason: str
) -> None:
    page = await people.sign_in(service, viewer)
    await page.goto(f"/inbox/threads/{thread_id}")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    await expect(page.get_by_role("button", name="Start video call")).to_have_count(0)

    icon = page.get_by_role("button", name="Video call unavailable")
    await expect(icon).to_be_visible()
    await expect(icon).to_have_attribute("aria-disabled", "true")
    words = REASON_MESSAGES[ReasonCode(reason)]
    # The reason is written in the thread (no hover needed, nothing covers the messages) and
    # is the icon's description for screen readers.
    written = page.locator("#call-unavailable")
    await expect(written).to_be_visible()
    await expect(written).to_contain_text(words)
    await expect(written.locator(f'[data-reason="{reason}"]')).to_have_count(1)
    await expect(icon).to_have_accessible_description(re.compile(re.escape(words)))
    await expect(page.get_by_role("tooltip")).to_have_count(0)
    # Clicking the disabled icon starts nothing (Playwright would wait for it to be enabled).
    await icon.click(force=True)
    await expect(page.get_by_role("dialog")).to_have_count(0)
    if thread_id in ("t-not-vid", "t-restricted"):
        await screenshot(page, f"reason-{reason}")


async def test_buyers_see_no_camera_icon(service: Service, people: People) -> None:
    """A buyer can never start a call: no icon, enabled or not, on any thread."""
    buyer = await people.sign_in(service, "buyer-vera")
    for spec in DEMO_THREADS:
        if spec.buyer_id != "buyer-vera":
            continue
        await buyer.goto(f"/inbox/threads/{spec.id}")
        await expect(buyer.get_by_role("heading", level=1)).to_be_visible()
        await expect(
            buyer.get_by_role("button", name=re.compile("video call", re.I))
        ).to_have_count(0)
        await expect(buyer.locator("#call-unavailable")).to_have_count(0)


async def test_restricted_person_is_told_in_the_inbox(service: Service, people: People) -> None:
    rita = await people.sign_in(service, "buyer-rita")
    notice = rita.get_by_role("region", name="Your account is restricted")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text("can't make or take video calls")
    await expect(notice).to_contain_text("appeal through the marketplace")
    await screenshot(rita, "inbox-restricted")
    await rita.goto("/inbox/threads/t-restricted")
    await expect(notice).to_be_visible()
    # Someone not restricted sees no such notice.
    sam = await people.sign_in(service, "seller-sam")
    await expect(sam.get_by_role("region", name="Your account is restricted")).to_have_count(0)


async def test_review_console_is_for_reviewers_only(service: Service, people: People) -> None:
    seller = await people.sign_in(service, "seller-sam")
    response = await seller.goto("/review")
    assert response is not None and response.status == 403
    await expect(seller.get_by_role("heading", name="Reviewers only")).to_be_visible()
    await expect(seller.get_by_role("alert")).to_contain_text("compliance reviewers")
    await screenshot(seller, "review-forbidden")

    reviewer = await people.sign_in(service, "reviewer-rey")
    await expect(reviewer).to_have_url(re.compile(r"/review$"))
    await expect(reviewer.get_by_role("heading", name="Review console")).to_be_visible()
    await expect(reviewer.locator("#queue-status")).to_have_text("No calls match these filters.")
    await screenshot(reviewer, "review-empty-queue")


async def test_signed_out_visitor_is_told_why_they_see_the_sign_in_page(
    service: Service, people: People
) -> None:
    visitor = await people.page(service)
    await visitor.goto("/review")
    await expect(visitor).to_have_url(re.compile(r"/login\?next=/review"))
    await expect(visitor.get_by_role("status")).to_contain_text(
        "You are signed out, or your session has ended. Sign in again to continue to the review"
        " console."
    )
    await screenshot(visitor, "sign-in-signed-out")
    await visitor.get_by_role("link", name="Sign in as Rey Reviewer").click()
    await expect(visitor).to_have_url(re.compile(r"/review$"))
    # The session ends while the console is open: its next request brings the note back.
    # That may be the console's own background request, before the click lands (the
    # button is then gone with the page): the outcome below is what is checked.
    await visitor.context.clear_cookies()
    with contextlib.suppress(PlaywrightTimeoutError):
        await visitor.get_by_role("button", name="Apply filters").click(timeout=5_000)
    await expect(visitor).to_have_url(re.compile(r"/login\?next=%2Freview|/login\?next=/review"))
    await expect(visitor.get_by_role("status")).to_contain_text("signed out")


async def test_favicon_is_served(service: Service, people: People) -> None:
    page = await people.page(service)
    response = await page.goto("/favicon.ico")
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")


async def test_unknown_thread_is_explained(service: Service, people: People) -> None:
    seller = await people.sign_in(service, "seller-sam")
    response = await seller.goto("/inbox/threads/no-such-thread")
    assert response is not None and response.status == 404
    await expect(seller.get_by_role("heading", name="Conversation not found")).to_be_visible()


POST_MESSAGES = """async (texts) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  for (const text of texts) {
    const r = await fetch("/api/v1/threads/t-eligible/messages", {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ text }),
    });
    if (!r.ok) throw new Error(`posting failed: ${r.status}`);
  }
}"""


async def test_inbox_orders_by_activity_counts_unread_and_opens_at_the_newest(
    service_factory: ServiceFactory, people: People
) -> None:
    # The test posts a burst of messages faster than a person could; the write throttle
    # (tests/integration/test_write_throttle.py) is not what is tested here.
    service = await service_factory(message_rate_burst=100)
    seller = await people.sign_in(service, "seller-sam")
    buyer = await people.sign_in(service, "buyer-vera")
    conversations = buyer.get_by_role("list", name="Conversations")
    eligible = conversations.locator('.thread-item[data-thread-id="t-eligible"]')
    await expect(eligible.locator(".unread-badge")).to_have_count(0)

    # The seller answers in a thread that was not the buyer's latest: 14 new messages.
    texts = [f"Answer number {n} about the launch video." for n in range(1, 15)]
    await seller.goto("/inbox/threads/t-eligible")
    await seller.evaluate(POST_MESSAGES, texts)

    # Live, without reload: the list moves the thread to the top with its unread count.
    await buyer.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    first = conversations.locator(".thread-item").first
    await expect(first).to_have_attribute("data-thread-id", "t-eligible")
    await expect(first.locator(".avatar")).to_have_text("SS")
    await expect(first.locator("time")).not_to_have_text("")
    await expect(first.get_by_role("link")).to_contain_text("14 unread")
    await expect(first.locator(".thread-preview")).to_have_text(texts[-1])
    await screenshot(buyer, "inbox-unread")

    # Opening it shows the newest message without scrolling, and reads the thread.
    await first.get_by_role("link").first.click()
    newest = buyer.get_by_role("list", name="Messages").get_by_text(texts[-1])
    await expect(newest).to_be_in_viewport()
    at_bottom = await buyer.evaluate(
        "() => { const l = document.getElementById('messages'); return l.scrollHeight >"
        " l.clientHeight && l.scrollTop + l.clientHeight >= l.scrollHeight - 2; }"
    )
    assert at_bottom
    await buyer.goto("/inbox")
    await expect(eligible.locator(".unread-badge")).to_have_count(0)
