"""Real headless Chromium against a real service on loopback, with the demo data.

Chromium is Debian's (/usr/bin/chromium), driven by Playwright's async API on the test's
event loop; the service runs on the same loop (aiohttp ``TestServer`` on 127.0.0.1), so
nothing outlives a test: each test's browser and server are closed in its teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.support import CHROMIUM_FLAGS, People, Service, start_service
from tests.support.tools import require_tool

ServiceFactory = Callable[..., Awaitable[Service]]


@pytest.fixture
def chromium() -> str:
    """Path of Debian's chromium: skipped when missing, a failure in CI (CI=true)."""
    return require_tool("chromium")


@pytest.fixture
async def service_factory(tmp_path: Path) -> AsyncIterator[ServiceFactory]:
    """Start the service with demo data and settings overrides; every one closes at teardown."""
    started: list[Service] = []

    async def factory(**overrides: Any) -> Service:
        service = await start_service(tmp_path / f"service{len(started)}", **overrides)
        started.append(service)
        return service

    yield factory
    for service in reversed(started):
        await service.close()


@pytest.fixture
async def service(service_factory: ServiceFactory) -> Service:
    return await service_factory()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def people(browser: Browser, service_factory: ServiceFactory) -> AsyncIterator[People]:
    """Signed-in people, each in their own browser context (own cookies, own camera).

    Depends on ``service_factory`` only so that the pages close before the services do.
    """
    crowd = People(browser)
    yield crowd
    await crowd.close()
    crowd.assert_no_page_errors()
