"""Helpers of the browser tests: the service under test, signed-in people, screenshots."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from server.app import create_app
from server.demo import demo_users, seed_demo
from server.settings import Settings
from tests.support.service import make_settings

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]

# WebRTC may then only use TCP through TURN (the `--force-...` spelling does nothing in
# Chromium 156): the relay-only browser of the TURN tests and benchmark.
RELAY_ONLY_FLAG = "--webrtc-ip-handling-policy=disable_non_proxied_udp"

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
# axe-core from the npm registry, installed by `make axe` (part of `make test`), git-ignored.
AXE_SCRIPT = REPO / "build" / "node" / "node_modules" / "axe-core" / "axe.min.js"
# What the accessibility check refuses (axe's own impact levels).
REFUSED_IMPACTS = ("serious", "critical")
DEMO_NAMES = {user.id: user.display_name for user in demo_users()}

# Playwright's own timeout for a step; a call's media takes a few seconds on a slow machine.
STEP_TIMEOUT_MS = 20_000
expect.set_options(timeout=STEP_TIMEOUT_MS)


@dataclass
class Service:
    """The real service on loopback, seeded with the demo data."""

    settings: Settings
    app: web.Application
    server: TestServer
    base_url: str

    async def close(self) -> None:
        await self.server.close()


async def start_service(data_root: Path, **overrides: Any) -> Service:
    settings = make_settings(data_root, demo=True, **overrides)
    await seed_demo(settings)
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    return Service(settings=settings, app=app, server=server, base_url=base_url)


@dataclass
class People:
    """Browser contexts of signed-in people; collects uncaught page errors and CSP refusals."""

    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def _watch(self, page: Page, who: str) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"{who}: {error}"))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and "Content Security Policy" in message.text:
                self.problems.append(f"{who}: {message.text}")

        page.on("console", on_console)

    async def page(self, service: Service, who: str = "visitor", viewport: Any = None) -> Page:
        context = await self.browser.new_context(
            base_url=service.base_url, viewport=viewport or DESKTOP
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        self.contexts.append(context)
        page = await context.new_page()
        self._watch(page, who)
        return page

    async def sign_in(
        self, service: Service, user_id: str, *, next_path: str | None = None
    ) -> Page:
        """Sign in the way a demo visitor does: the sign-in page, then their name."""
        page = await self.page(service, user_id)
        await page.goto("/login" + (f"?next={next_path}" if next_path else ""))
        await page.get_by_role("link", name=f"Sign in as {DEMO_NAMES[user_id]}").click()
        await page.wait_for_url(lambda url: "/login" not in url)
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()
        self.contexts.clear()

    def assert_no_page_errors(self) -> None:
        assert not self.problems, "errors in the pages:\n" + "\n".join(self.problems)


@cache
def axe_script() -> str:
    """axe.min.js: a test without it is skipped locally and fails in CI (CI=true)."""
    if AXE_SCRIPT.is_file():
        return AXE_SCRIPT.read_text(encoding="utf-8")
    message = f"axe-core is not installed at {AXE_SCRIPT}: run `make axe`"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
  }));
}"""


async def check_accessibility(page: Page, name: str) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated through the DevTools protocol, which the page's CSP does not govern;
        # a <script> tag would need the CSP loosened for the test.
        await page.evaluate(axe_script())
    violations = await page.evaluate(AXE_RUN)
    refused = [v for v in violations if v["impact"] in REFUSED_IMPACTS]
    assert not refused, f"{name}: accessibility violations " + "; ".join(
        f"{v['id']} ({v['impact']}: {v['help']}) at {v['nodes']}" for v in refused
    )


async def screenshot(page: Page, name: str) -> None:
    """Check the page's accessibility, then save it at desktop and phone width; at phone
    width nothing may scroll sideways."""
    await check_accessibility(page, name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    try:
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            await page.set_viewport_size(size)
            overflow = await page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {label} width"
            await page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    finally:
        if original:
            await page.set_viewport_size(original)
