"""Ringing in real Chromium: presence, the incoming-call banner, decline (confirmed), cancel,
a missed call's card (banner, inbox and thread, live), the offline buyer's "Join call"
button (the buyer's only, only while the call can be joined) and the seller told the buyer
was offline, and an expired or tampered join link."""

from __future__ import annotations

import re
import time
from unittest import mock

import pytest
from playwright.async_api import expect

from server.calls.join_links import join_path, make_join_token
from tests.browser.calls import (
    RECORDING_NOTICE,
    call_screen,
    expect_ended,
    incoming_banner,
    start_call,
)
from tests.browser.conftest import ServiceFactory
from tests.browser.support import People, Service, screenshot

pytestmark = pytest.mark.browser


async def test_presence_and_decline_from_the_banner(service: Service, people: People) -> None:
    buyer = await people.sign_in(service, "buyer-vera")
    await buyer.goto("/inbox")
    seller = await people.sign_in(service, "seller-sam")
    await seller.goto("/inbox/threads/t-eligible")
    # Each sees the other online: the header of the thread and the buyer's inbox list.
    await expect(seller.locator(".thread-who .presence")).to_have_text("Online")
    await expect(buyer.locator('.thread-item[data-thread-id="t-eligible"] .presence')).to_have_text(
        "Online"
    )

    await start_call(seller)
    banner = await incoming_banner(buyer)
    await expect(banner).to_contain_text("Brand video for a product launch")
    await expect(banner.get_by_role("button", name="Accept")).to_be_visible()
    await screenshot(buyer, "incoming-call-banner")
    await screenshot(seller, "call-screen-calling")

    await banner.get_by_role("button", name="Decline").click()
    await expect(banner).to_have_count(0)
    # The buyer is told it worked.
    await expect(
        buyer.get_by_role("region", name="Incoming calls").get_by_role("status")
    ).to_have_text("You declined the call from Sam Seller. They will see that you declined.")
    await screenshot(buyer, "incoming-call-declined")
    await expect_ended(seller, "Vera VID", "Vera VID declined the call.")
    await screenshot(seller, "call-ended-declined")
    await (
        call_screen(seller, "Vera VID")
        .get_by_role("button", name="Back to the conversation")
        .click()
    )
    await expect(call_screen(seller, "Vera VID")).to_be_hidden()
    messages = seller.get_by_role("list", name="Messages")
    await expect(
        messages.locator(".call-note", has_text="Vera VID declined your video call.")
    ).to_have_count(1)

    # The seller leaves the thread: the buyer's inbox shows them offline.
    await seller.goto("/login")
    await seller.context.close()
    await expect(buyer.locator('.thread-item[data-thread-id="t-eligible"] .presence')).to_have_text(
        "Offline"
    )


async def test_seller_cancels_while_ringing(service: Service, people: People) -> None:
    buyer = await people.sign_in(service, "buyer-vera")
    await buyer.goto("/inbox/threads/t-eligible")
    seller = await people.sign_in(service, "seller-sam")
    await start_call(seller)
    banner = await incoming_banner(buyer)
    await call_screen(seller, "Vera VID").get_by_role("button", name="Hang up").click()
    await expect_ended(seller, "Vera VID", "You cancelled the call.")
    await expect(banner).to_have_count(0)
    # To the buyer a call cancelled before they answered is a missed call.
    await expect(
        buyer.get_by_role("list", name="Messages").locator(
            ".call-note.missed", has_text="Missed video call from Sam Seller"
        )
    ).to_have_count(1)


async def test_missed_call_leaves_a_card_live_in_the_inbox_and_the_thread(
    service_factory: ServiceFactory, people: People
) -> None:
    service = await service_factory(ring_timeout_seconds=3)
    buyer = await people.sign_in(service, "buyer-vera")
    await expect(buyer).to_have_url(re.compile(r"/inbox$"))
    seller = await people.sign_in(service, "seller-sam")
    await start_call(seller)
    banner = await incoming_banner(buyer)
    # Nobody answers: the ring times out on the server.
    await expect_ended(seller, "Vera VID", "Vera VID did not answer in time.")
    await expect(banner).to_have_count(0)
    # The banner says "missed" instead of vanishing ...
    incoming = buyer.get_by_role("region", name="Incoming calls")
    await expect(incoming.get_by_role("status")).to_have_text("Missed video call from Sam Seller")
    await expect(incoming.get_by_role("link", name="Reply")).to_be_visible()
    # ... and the inbox, without a reload, shows the missed call with "Reply".
    row = buyer.get_by_role("list", name="Conversations").locator(
        '.thread-item[data-thread-id="t-eligible"]'
    )
    card = row.locator(".missed-card")
    await expect(card).to_contain_text("Missed video call from Sam Seller")
    await expect(row.locator(".thread-item, :scope").first).to_have_attribute(
        "data-thread-id", "t-eligible"
    )
    await expect(
        buyer.get_by_role("list", name="Conversations").locator(".thread-item").first
    ).to_have_attribute("data-thread-id", "t-eligible")
    await screenshot(buyer, "inbox-missed-call")
    await incoming.get_by_role("button", name="Dismiss").click()
    await expect(incoming.get_by_role("status")).to_have_count(0)

    # "Reply" opens the thread with the composer ready; the thread shows the same card.
    await card.get_by_role("link", name="Reply").click()
    await expect(buyer).to_have_url(re.compile(r"/inbox/threads/t-eligible#composer-text$"))
    await expect(buyer.get_by_role("textbox", name="Your message")).to_be_focused()
    missed = buyer.get_by_role("list", name="Messages").locator(
        ".call-note.missed", has_text="Missed video call from Sam Seller"
    )
    await expect(missed).to_have_count(1)
    await expect(missed.get_by_role("button", name="Reply")).to_be_visible()
    await screenshot(buyer, "thread-missed-call-buyer")
    await (
        call_screen(seller, "Vera VID")
        .get_by_role("button", name="Back to the conversation")
        .click()
    )
    await expect(
        seller.get_by_role("list", name="Messages").locator(
            ".call-note", has_text="Vera VID didn't answer your video call."
        )
    ).to_have_count(1)


async def test_missed_call_card_appears_in_an_open_thread_without_reload(
    service_factory: ServiceFactory, people: People
) -> None:
    service = await service_factory(ring_timeout_seconds=3)
    buyer = await people.sign_in(service, "buyer-vera")
    await buyer.goto("/inbox/threads/t-eligible")
    seller = await people.sign_in(service, "seller-sam")
    await start_call(seller)
    await incoming_banner(buyer)
    await expect_ended(seller, "Vera VID", "Vera VID did not answer in time.")
    missed = buyer.get_by_role("list", name="Messages").locator(".call-note.missed")
    await expect(missed).to_have_text(re.compile("Missed video call from Sam Seller"))
    # A reload shows it too: it is stored in the thread.
    await buyer.reload()
    await expect(missed).to_have_count(1)


async def test_offline_buyer_gets_a_join_call_button_and_the_seller_is_told(
    service: Service, people: People
) -> None:
    seller = await people.sign_in(service, "seller-sam")
    await start_call(seller)
    # Nobody of the buyer's is online: no ring, a join link in the thread, and the seller's
    # ringing screen says so.
    screen = call_screen(seller, "Vera VID")
    await expect(screen.locator("[data-offline-note]")).to_contain_text(
        'Vera VID is offline, so a "Join call" link was left in your conversation.'
    )
    await screenshot(seller, "call-screen-calling-offline")
    buyer = await people.sign_in(service, "buyer-vera")
    await buyer.goto("/inbox/threads/t-eligible")
    messages = buyer.get_by_role("list", name="Messages")
    invite = messages.locator(".call-note", has_text="Sam Seller is calling you")
    await expect(invite).to_have_count(1)
    await expect(messages).not_to_contain_text("token=")
    await expect(messages).not_to_contain_text("/calls/")
    await screenshot(buyer, "thread-join-call-buyer")
    await invite.get_by_role("button", name="Join call").click()
    await expect(buyer).to_have_url(re.compile(r"/calls/[^/]+/join\?token="))

    # The join page: who calls about which thread, the notice, a preview, the pickers.
    await expect(buyer.get_by_role("heading", name="Video call from Sam Seller")).to_be_visible()
    await expect(
        buyer.get_by_role("link", name=re.compile("Brand video for a product launch"))
    ).to_be_visible()
    await expect(buyer.locator("#recording-notice")).to_have_text(RECORDING_NOTICE)
    join = buyer.get_by_role("button", name="Join call")
    await expect(join).to_be_visible()
    await expect(join).to_have_accessible_description(RECORDING_NOTICE)
    await buyer.wait_for_function(
        "() => document.querySelector('[data-preview]').videoWidth > 0", timeout=15_000
    )
    await expect(buyer.get_by_role("combobox", name="Camera")).to_be_enabled()
    await expect(buyer.get_by_role("combobox", name="Microphone")).to_be_enabled()
    await screenshot(buyer, "join-page")

    await buyer.get_by_role("button", name="Decline").click()
    await expect(buyer.locator("[data-join-state]")).to_contain_text("You declined the call.")
    await expect(join).to_be_hidden()
    await expect_ended(seller, "Vera VID", "Vera VID declined the call.")

    # The call is over: the thread's note no longer offers to join.
    await buyer.goto("/inbox/threads/t-eligible")
    await expect(messages.locator(".call-note", has_text="That call is over")).to_have_count(1)
    await expect(buyer.get_by_role("button", name="Join call")).to_have_count(0)
    # The seller's thread shows the note without the link or a button.
    await (
        call_screen(seller, "Vera VID")
        .get_by_role("button", name="Back to the conversation")
        .click()
    )
    seller_messages = seller.get_by_role("list", name="Messages")
    await expect(
        seller_messages.locator(".call-note", has_text="Vera VID was offline")
    ).to_have_count(1)
    await expect(seller_messages).not_to_contain_text("token=")
    await expect(seller.get_by_role("button", name="Join call")).to_have_count(0)


async def test_expired_join_link_is_explained(service: Service, people: People) -> None:
    seller = await people.sign_in(service, "seller-sam")
    call_id = await start_call(seller)
    # A join link minted an hour ago: the service's own token, as the clock saw it then.
    with mock.patch("time.time", return_value=time.time() - 3600):
        token = make_join_token(
            service.settings.secret_key.get_secret_value(), call_id=call_id, buyer_id="buyer-vera"
        )
    buyer = await people.sign_in(service, "buyer-vera")
    response = await buyer.goto(join_path(call_id, token))
    assert response is not None and response.status == 410
    await expect(buyer.get_by_role("heading", level=1)).to_have_text(re.compile("expired"))
    await expect(buyer.get_by_text("This link has expired")).to_be_visible()
    await expect(buyer.get_by_role("link", name="Back to your inbox")).to_be_visible()
    body = await buyer.locator("body").inner_text()
    assert "Traceback" not in body and '"error"' not in body
    await expect(buyer.get_by_role("button", name="Join call")).to_have_count(0)
    await screenshot(buyer, "join-link-expired")


async def test_tampered_join_link_says_it_once(service: Service, people: People) -> None:
    seller = await people.sign_in(service, "seller-sam")
    call_id = await start_call(seller)
    buyer = await people.sign_in(service, "buyer-vera")
    response = await buyer.goto(join_path(call_id, "not-a-real-token"))
    assert response is not None and response.status == 403
    await expect(buyer.get_by_role("heading", level=1)).to_have_text("This join link is not valid")
    body = await buyer.locator("main").inner_text()
    assert body.count("not valid") == 1, body
    await screenshot(buyer, "join-link-invalid")
