"""The call screen in real Chromium: operated by keyboard, reconnecting after a dropped
socket and after a new media leg (the protocol's ICE restart), and every way a call can end
said in words."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from server.appkeys import DB
from server.db.models import Call, CallReport
from signaling.call_state import EndReason, FailureDetail
from signaling.eligibility import REASON_MESSAGES, ReasonCode
from signaling.ws_protocol import ErrorCode
from tests.browser.calls import (
    MEDIA_TIMEOUT_MS,
    RECORDING_NOTICE,
    accept_from_banner,
    call_screen,
    expect_ended,
    expect_media_flowing,
)
from tests.browser.support import People, Service, screenshot

pytestmark = pytest.mark.browser


async def test_every_end_reason_and_error_is_said_in_words(
    service: Service, people: People
) -> None:
    page = await people.page(service)
    await page.goto("/login")
    words: Any = await page.evaluate(
        """async ([reasons, details, codes, errors]) => {
          const m = await import("/static/call_words.js");
          const out = { ends: [], eligibility: m.ELIGIBILITY_WORDS, errors: {} };
          for (const end_reason of reasons) {
            const detailsFor = end_reason === "failed" ? details
              : end_reason === "ineligible" ? codes : [null];
            for (const detail of detailsFor) {
              for (const ended_by of ["me", "peer", null]) {
                for (const role of ["seller", "buyer"]) {
                  const state = { end_reason, ended_by, detail };
                  out.ends.push({ state, role,
                    text: m.endReasonWords(state, "me", "Pat Peer", role) });
                }
              }
            }
          }
          for (const code of errors) {
            out.errors[code] = m.protocolErrorWords({ code, message: "", reasons: [] });
          }
          return out;
        }""",
        [
            [r.value for r in EndReason],
            [d.value for d in FailureDetail],
            [c.value for c in ReasonCode],
            [c.value for c in ErrorCode],
        ],
    )
    for case in words["ends"]:
        text = case["text"]
        assert text and text != "The call ended.", case
        # Every failure detail has words of its own, not the generic connection problem.
        assert text != "The call failed because of a connection problem.", case
        assert "undefined" not in text and "null" not in text, case
        assert text.endswith("."), case
    for code, message in REASON_MESSAGES.items():
        assert words["eligibility"][code.value] == message
    for code, text in words["errors"].items():
        assert text and "undefined" not in text, code
    by_me = {
        (c["state"]["end_reason"], c["role"]): c["text"]
        for c in words["ends"]
        if c["state"]["ended_by"] == "me"
    }
    assert by_me[("hung_up", "seller")] == "You hung up."
    assert by_me[("declined", "buyer")] == "You declined the call."
    assert by_me[("cancelled", "seller")] == "You cancelled the call."


async def connected_call(seller: Page, buyer: Page) -> None:
    """The seller calls by keyboard only; the buyer accepts and joins."""
    await seller.goto("/inbox/threads/t-eligible")
    start = seller.get_by_role("button", name="Start video call")
    await start.focus()
    await seller.keyboard.press("Enter")
    notice = seller.get_by_role("dialog", name="Call Vera VID?")
    await expect(notice).to_contain_text(RECORDING_NOTICE)
    await expect(notice.get_by_role("button", name="Call now")).to_be_focused()
    # Escape backs out without calling; focus can come back to the icon.
    await seller.keyboard.press("Escape")
    await expect(notice).to_be_hidden()
    await start.focus()
    await seller.keyboard.press("Enter")
    await expect(notice.get_by_role("button", name="Call now")).to_be_focused()
    await seller.keyboard.press("Enter")
    screen = call_screen(seller, "Vera VID")
    await expect(screen.get_by_role("button", name="Hang up")).to_be_focused()
    # Escape does not leave a live call; Hang up does.
    await seller.keyboard.press("Escape")
    await expect(screen).to_be_visible()

    await accept_from_banner(buyer)
    for page, peer in ((seller, "Vera VID"), (buyer, "Sam Seller")):
        await expect(call_screen(page, peer).locator("[data-call-status]")).to_have_text(
            "Connected", timeout=MEDIA_TIMEOUT_MS
        )


async def test_keyboard_and_reconnecting(service: Service, people: People) -> None:
    buyer = await people.sign_in(service, "buyer-vera")
    seller = await people.sign_in(service, "seller-sam")
    await connected_call(seller, buyer)
    seller_screen = call_screen(seller, "Vera VID")
    buyer_screen = call_screen(buyer, "Sam Seller")

    # Every control is reachable with Tab, in a sensible order, inside the dialog.
    await seller_screen.get_by_role("button", name="Mute microphone").focus()
    reached = []
    for _ in range(7):
        reached.append(
            await seller.evaluate(
                "() => document.activeElement.getAttribute('aria-label')"
                " || document.activeElement.id || document.activeElement.textContent.trim()"
            )
        )
        await seller.keyboard.press("Tab")
    assert reached[:4] == ["Mute microphone", "Turn camera off", "Report", "Hang up"], reached
    assert "call-chat-text" in reached, reached

    # Names on both tiles.
    await expect(seller_screen.locator(".their-side figcaption")).to_contain_text("Vera VID")
    await expect(seller_screen.locator(".self-side figcaption")).to_contain_text("You")

    # On/off is unmistakable: aria-pressed, the label, and the state on both tiles.
    camera = seller_screen.get_by_role("button", name="Turn camera off")
    await expect(camera).to_have_attribute("aria-pressed", "false")
    await camera.focus()
    await seller.keyboard.press("Enter")
    camera_on = seller_screen.get_by_role("button", name="Turn camera on")
    await expect(camera_on).to_be_focused()
    await expect(camera_on).to_have_attribute("aria-pressed", "true")
    await expect(seller_screen.get_by_text("Your camera is off")).to_be_visible()
    cover = buyer_screen.locator("[data-their-cover]")
    await expect(cover).to_contain_text("Sam Seller turned their camera off. Voice only.")
    await expect(cover.locator(".avatar")).to_have_text("SS")
    mic = seller_screen.get_by_role("button", name="Mute microphone")
    await mic.click()
    await expect(seller_screen.get_by_role("button", name="Unmute microphone")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(seller_screen.locator("[data-self-muted]")).to_be_visible()
    peer_muted = buyer_screen.locator(".their-side [data-peer-muted]")
    await expect(peer_muted).to_have_text("Muted")
    await expect(peer_muted).to_have_attribute("aria-label", "Sam Seller muted their microphone.")
    await screenshot(buyer, "call-screen-peer-camera-off-muted")
    await seller_screen.get_by_role("button", name="Unmute microphone").click()
    await expect(peer_muted).to_be_hidden()
    await seller_screen.get_by_role("button", name="Turn camera on").click()
    await expect(seller_screen.get_by_role("button", name="Turn camera off")).to_be_visible()
    await expect(cover).to_be_hidden()

    # The other person's connection drops (the server's peer_connection_state, delivered
    # here through the page's own socket dispatcher): the status line says so with the time
    # left, their tile greys out, the timer pauses; and all returns when they are back.
    peer_state = (
        "s => window.inboxcall.call.socket.emit('peer_connection_state', {type:"
        " 'peer_connection_state', call_id: window.inboxcall.call.callId, user_id:"
        " 'buyer-vera', state: s})"
    )
    await seller.evaluate(peer_state, "reconnecting")
    status = seller_screen.get_by_role("status").first
    await expect(status).to_contain_text("Reconnecting")
    await expect(status).to_contain_text(
        re.compile(
            r"Vera VID's connection dropped; reconnecting. The call waits for them \(0:\d\d left\)"
        )
    )
    await expect(seller_screen.locator(".their-side")).to_have_css("filter", "grayscale(1)")
    paused = await seller.evaluate("() => window.inboxcall.call.connectedSeconds")
    await screenshot(seller, "call-screen-peer-reconnecting")
    assert await seller.evaluate("() => window.inboxcall.call.connectedSeconds") == paused
    await seller.evaluate(peer_state, "connected")
    await expect(seller_screen.locator("[data-call-status]")).to_have_text("Connected")
    await expect(seller_screen.locator(".their-side")).to_have_css("filter", "none")

    # Report from the call screen: reason, details, "Send report".
    await seller_screen.get_by_role("button", name="Report", exact=True).click()
    report = seller.get_by_role("dialog", name="Report this call")
    await expect(report).to_be_visible()
    await report.get_by_role("combobox", name="Reason").select_option("harassment")
    await report.get_by_role("textbox", name="Details").fill("Rude remarks at the start.")
    await screenshot(seller, "call-screen-report")
    await report.get_by_role("button", name="Send report").click()
    await expect(report).to_be_hidden()
    await expect(seller_screen.locator("[data-call-live]")).to_have_text(
        re.compile("your report was sent")
    )

    # The seller's socket drops: "Reconnecting...", then back, the call still on.
    await seller.evaluate("() => window.inboxcall.call.socket.ws.close()")
    await expect(seller_screen.locator("[data-call-status]")).to_have_text("Reconnecting...")
    await expect(seller_screen.locator("[data-call-status]")).to_have_text(
        "Connected", timeout=MEDIA_TIMEOUT_MS
    )
    await expect_media_flowing(seller)

    # The buyer's media leg is replaced by a new RTCPeerConnection and offer (what the page
    # does when ICE fails): "Reconnecting...", then media flows again both ways.
    first_leg = await buyer.evaluate("() => window.inboxcall.call.generation")
    # Read in the same turn: on a quick machine the new leg connects within a moment.
    said = await buyer.evaluate(
        "() => { window.inboxcall.call.restartLeg();"
        " return document.querySelector('#call-screen [data-call-status]').textContent; }"
    )
    assert said == "Reconnecting..."
    await expect(buyer_screen.locator("[data-call-status]")).to_have_text(
        "Connected", timeout=MEDIA_TIMEOUT_MS
    )
    assert await buyer.evaluate("() => window.inboxcall.call.generation") == first_leg + 1
    await expect_media_flowing(buyer)
    await expect_media_flowing(seller)

    # The buyer hangs up: each side is told who ended it.
    await buyer_screen.get_by_role("button", name="Hang up").click()
    await expect_ended(buyer, "Sam Seller", "You hung up.")
    await expect_ended(seller, "Vera VID", "Vera VID hung up.")
    await expect(seller_screen.get_by_role("heading", name="Call ended")).to_be_focused()
    await expect(seller_screen.locator("[data-call-end-duration]")).to_have_text(
        re.compile(r"The call lasted \d+:\d\d\.")
    )
    # Nothing of the live call is left on the end screen.
    for leftover in (
        seller_screen.get_by_text("Recording", exact=True),
        seller_screen.get_by_role("timer"),
        seller_screen.locator("[data-call-quality]"),
        seller_screen.get_by_label("Their video"),
        seller_screen.get_by_label("Your video"),
        seller_screen.get_by_role("button", name="Hang up"),
        seller_screen.get_by_role("textbox", name="Message"),
    ):
        await expect(leftover).to_be_hidden()
    await expect(
        seller_screen.get_by_role("button", name="Back to the conversation")
    ).to_be_visible()
    await screenshot(seller, "call-ended-seller")

    # The report is stored: the call is always reviewed.
    call_id = await seller.evaluate("() => window.inboxcall.call.callId")
    async with service.app[DB]() as session:
        call = await session.get(Call, call_id)
        reports = (
            await session.scalars(select(CallReport).where(CallReport.call_id == call_id))
        ).all()
    assert call is not None and call.reported
    assert [r.reason for r in reports] == ["harassment: Rude remarks at the start."]
