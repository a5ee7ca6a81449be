"""The inbox and thread pages in real Chromium: lists, messages, the call icon and its reasons."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from server.demo import DEMO_THREADS
from signaling.eligibility import REASON_MESSAGES, ReasonCode
from tests.browser.support import People, Service, screenshot

pytestmark = pytest.mark.browser

# Every ineligible demo thread, as seen by its seller, and the buyer's view of any thread.
INELIGIBLE = [(t.id, t.seller_id, t.expected) for t in DEMO_THREADS if t.expected != "allowed"]
INELIGIBLE.append(("t-eligible", "buyer-vera", "caller_not_seller"))


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
async def test_call_icon_absent_and_reason_explained(
    service: Service, people: People, thread_id: str, viewer: str, reason: str
) -> None:
    page = await people.sign_in(service, viewer)
    await page.goto(f"/inbox/threads/{thread_id}")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    await expect(page.get_by_role("button", name="Start video call")).to_have_count(0)

    icon = page.get_by_role("button", name="Video call unavailable")
    await expect(icon).to_be_visible()
    await expect(icon).to_have_attribute("aria-disabled", "true")
    tooltip = page.get_by_role("tooltip")
    words = REASON_MESSAGES[ReasonCode(reason)]
    await expect(tooltip).to_be_hidden()
    # The reason is the button's description, for screen readers, and shows on hover ...
    await expect(icon).to_have_accessible_description(re.compile(re.escape(words)))
    await icon.hover()
    await expect(tooltip).to_be_visible()
    await expect(tooltip).to_contain_text(words)
    await expect(tooltip.locator(f'[data-reason="{reason}"]')).to_have_count(1)
    await page.mouse.move(0, 0)
    await expect(tooltip).to_be_hidden()
    # ... and on keyboard focus (Tab from the element before it), and Escape hides it.
    await page.get_by_role("heading", level=1).click()
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await icon.evaluate("el => el === document.activeElement"):
            break
    await expect(icon).to_be_focused()
    await expect(tooltip).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(tooltip).to_be_hidden()
    # Clicking the disabled icon starts nothing (Playwright would wait for it to be enabled).
    await icon.click(force=True)
    await expect(page.get_by_role("dialog")).to_have_count(0)
    if thread_id in ("t-not-vid", "t-eligible"):
        await page.mouse.move(0, 0)
        await icon.hover()
        await screenshot(page, f"reason-{reason}")


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


async def test_unknown_thread_is_explained(service: Service, people: People) -> None:
    seller = await people.sign_in(service, "seller-sam")
    response = await seller.goto("/inbox/threads/no-such-thread")
    assert response is not None and response.status == 404
    await expect(seller.get_by_role("heading", name="Conversation not found")).to_be_visible()
