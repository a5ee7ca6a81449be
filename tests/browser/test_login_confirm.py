"""A sign-in link opened in a browser signed in as someone else asks first (login CSRF),
in real Chromium: "Continue as ..." switches, "Stay signed in as ..." keeps the session."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.support import People, Service, screenshot

pytestmark = pytest.mark.browser


async def test_a_link_for_another_person_asks_before_switching(
    service: Service, people: People
) -> None:
    page = await people.sign_in(service, "seller-sam")
    await expect(page).to_have_url(re.compile(r"/inbox$"))

    # The demo's sign-in button mints a one-time link for Vera and opens it here.
    await page.goto("/login/demo/buyer-vera")
    await expect(page.get_by_role("heading", name="Switch account?")).to_be_visible()
    await expect(page.get_by_text("You are signed in as Sam Seller")).to_be_visible()
    await screenshot(page, "login-confirm")
    await page.get_by_role("link", name="Stay signed in as Sam Seller").click()
    await expect(page).to_have_url(re.compile(r"/inbox$"))
    await expect(page.locator(".who")).to_contain_text("Sam Seller")

    await page.goto("/login/demo/buyer-vera")
    await page.get_by_role("button", name="Continue as Vera VID").click()
    await expect(page).to_have_url(re.compile(r"/inbox$"))
    await expect(page.locator(".who")).to_contain_text("Vera VID")


async def test_a_link_in_a_browser_with_no_session_signs_in_at_once(
    service: Service, people: People
) -> None:
    page = await people.page(service)
    await page.goto("/login/demo/seller-sam")
    await expect(page).to_have_url(re.compile(r"/inbox$"))
    await expect(page.locator(".who")).to_contain_text("Sam Seller")
    # Signing out ends the session: the inbox asks to sign in again.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login"))
    await page.goto("/inbox")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
