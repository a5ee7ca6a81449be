"""Every page still works with the keyboard only (issue 10): real Chromium, demo data, and
nothing but Tab, Shift+Tab, Enter, Space and Escape; focus is checked at every step.

The call screen's own controls are covered by test_call_screen.test_keyboard_and_reconnecting;
here are the journeys that lead to it and the other pages: the sign-in page, the seller's
inbox to a call, the buyer answering from the incoming banner, the reviewer console."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from tests.browser.calls import RECORDING_NOTICE, call_screen, expect_ended, incoming_banner
from tests.browser.support import DEMO_NAMES, People, Service
from tests.browser.test_review_console import CALL_ID, seed_reviewable_call

pytestmark = pytest.mark.browser

DESCRIBE_FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return "<body>";
  const name = el.getAttribute("aria-label") || el.textContent.trim().slice(0, 40);
  return `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${name}"`;
}"""


async def is_focused(locator: Locator) -> bool:
    if await locator.count() != 1:
        return False
    return bool(await locator.evaluate("el => el === document.activeElement"))


async def tab_to(page: Page, locator: Locator, max_presses: int = 40, key: str = "Tab") -> None:
    """Press Tab (or ``key``, e.g. Shift+Tab) until ``locator`` has the focus."""
    await expect(locator).to_be_visible()
    trail = []
    for _ in range(max_presses):
        if await is_focused(locator):
            return
        await page.keyboard.press(key)
        trail.append(await page.evaluate(DESCRIBE_FOCUS))
    if await is_focused(locator):
        return
    pytest.fail(
        f"{locator} not reached with {max_presses} presses of {key}; focus went: "
        + " -> ".join(trail)
    )


async def sign_in_by_keyboard(people: People, service: Service, user_id: str) -> Page:
    """The sign-in page by keyboard: Tab to "Sign in as ...", Enter."""
    page = await people.page(service, user_id)
    await page.goto("/login")
    await tab_to(page, page.get_by_role("link", name=f"Sign in as {DEMO_NAMES[user_id]}"))
    await page.keyboard.press("Enter")
    await page.wait_for_url(lambda url: "/login" not in url)
    return page


async def call_by_keyboard(seller: Page) -> Locator:
    """From the seller's inbox: the thread, its "Start video call", the notice, "Call now"."""
    await seller.goto("/inbox")
    await tab_to(seller, seller.locator('a[href="/inbox/threads/t-eligible"]').first)
    await seller.keyboard.press("Enter")
    await seller.wait_for_url("**/inbox/threads/t-eligible")
    start = seller.get_by_role("button", name="Start video call")
    await tab_to(seller, start)
    await seller.keyboard.press("Enter")
    notice = seller.get_by_role("dialog", name="Call Vera VID?")
    await expect(notice).to_contain_text(RECORDING_NOTICE)
    # The notice takes the focus, on "Call now"; Tab reaches "Cancel" in it, Shift+Tab
    # comes back.
    call_now = notice.get_by_role("button", name="Call now")
    await expect(call_now).to_be_focused()
    await seller.keyboard.press("Tab")
    await expect(notice.get_by_role("button", name="Cancel")).to_be_focused()
    await tab_to(seller, call_now, max_presses=5, key="Shift+Tab")
    await seller.keyboard.press("Enter")
    screen = call_screen(seller, "Vera VID")
    await expect(screen).to_be_visible()
    await expect(screen.locator("[data-call-status]")).to_have_text("Calling...")
    return screen


async def test_sign_in_page_by_keyboard(service: Service, people: People) -> None:
    page = await people.page(service)
    await page.goto("/login")
    links = page.get_by_role("link", name="Sign in as")
    names = [name.strip() for name in await links.all_inner_texts()]
    assert len(names) == len(DEMO_NAMES), names
    for name in names:
        await tab_to(page, page.get_by_role("link", name=name, exact=True))
    # Backwards too.
    await tab_to(page, page.get_by_role("link", name=names[0], exact=True), key="Shift+Tab")
    await page.keyboard.press("Enter")
    await page.wait_for_url(lambda url: "/login" not in url)


async def test_seller_calls_from_the_inbox_by_keyboard(service: Service, people: People) -> None:
    seller = await sign_in_by_keyboard(people, service, "seller-sam")
    screen = await call_by_keyboard(seller)
    hang_up = screen.get_by_role("button", name="Hang up")
    await expect(hang_up).to_be_focused()
    # Escape does not leave the call; Enter on Hang up does.
    await seller.keyboard.press("Escape")
    await expect(screen).to_be_visible()
    await tab_to(seller, hang_up, max_presses=15)
    await seller.keyboard.press("Enter")
    await expect_ended(seller, "Vera VID", "You cancelled the call.")
    await expect(screen.get_by_role("heading", name="Call ended")).to_be_focused()
    back = screen.get_by_role("button", name="Back to the conversation")
    await tab_to(seller, back, max_presses=10)
    await seller.keyboard.press("Enter")
    await expect(screen).to_be_hidden()


async def test_buyer_accepts_from_the_banner_by_keyboard(service: Service, people: People) -> None:
    buyer = await sign_in_by_keyboard(people, service, "buyer-vera")
    seller = await sign_in_by_keyboard(people, service, "seller-sam")
    await call_by_keyboard(seller)

    banner = await incoming_banner(buyer)
    accept = banner.get_by_role("button", name="Accept")
    await expect(accept).to_have_accessible_description(RECORDING_NOTICE)
    await tab_to(buyer, accept)
    await buyer.keyboard.press("Enter")
    screen = call_screen(buyer, "Sam Seller")
    await expect(screen).to_be_visible()
    hang_up = screen.get_by_role("button", name="Hang up")
    await expect(hang_up).to_be_focused()
    await expect(screen.locator("[data-call-status]")).to_have_text("Connected", timeout=30_000)
    await buyer.keyboard.press("Enter")
    await expect_ended(buyer, "Sam Seller", "You hung up.")
    await expect_ended(seller, "Vera VID", "Vera VID hung up.")


async def test_reviewer_claims_and_plays_by_keyboard(
    service: Service, people: People, tmp_path: Path
) -> None:
    await seed_reviewable_call(service, tmp_path)
    reviewer = await sign_in_by_keyboard(people, service, "reviewer-rey")
    item = reviewer.locator(f'.queue-item[data-call-id="{CALL_ID}"]')
    await tab_to(reviewer, item.get_by_role("button", name="Claim"))
    await reviewer.keyboard.press("Enter")
    await expect(
        reviewer.get_by_role("heading", name="Sam Seller (seller) and Vera VID (buyer)")
    ).to_be_focused()
    await expect(item).to_contain_text("Claimed by you")
    await tab_to(reviewer, reviewer.get_by_role("button", name="Play"))
    await reviewer.keyboard.press("Enter")
    pause = reviewer.get_by_role("button", name="Pause")
    await expect(pause).to_be_focused()
    await reviewer.wait_for_function(
        "() => window.inboxcall.review.players().every((x) => !x.paused)", timeout=20_000
    )
    await reviewer.keyboard.press("Space")
    await expect(reviewer.get_by_role("button", name="Play")).to_be_focused()
    await reviewer.wait_for_function(
        "() => window.inboxcall.review.players().every((x) => x.paused)"
    )
