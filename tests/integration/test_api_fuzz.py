"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document.

A real server runs on loopback in a background thread with demo data; every request
carries a signed-in seller's session and CSRF token and the integration key, so the
fuzzer reaches past authentication into validation and the handlers. No answer may be 5xx.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings

from server.app import create_app
from server.demo import seed_demo
from tests.support.service import INTEGRATION_KEY, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class BackgroundServer:
    def __init__(self, tmp: Path) -> None:
        self.settings = make_settings(tmp, demo=True)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)
        self.port = 0
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        await seed_demo(self.settings)
        runner = web.AppRunner(create_app(self.settings))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._stop = asyncio.Event()
        self.ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        assert self.ready.wait(30), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    with BackgroundServer(tmp_path_factory.mktemp("fuzz")) as server:
        yield server


@pytest.fixture(scope="module")
def auth_headers(live_server: BackgroundServer) -> dict[str, str]:
    base = f"http://127.0.0.1:{live_server.port}"
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/login/demo/seller-sam").read()
    me = json.loads(opener.open(f"{base}/api/v1/me").read())
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return {
        "Cookie": cookie,
        "X-CSRF-Token": me["csrf_token"],
        "Authorization": f"Bearer {INTEGRATION_KEY}",
    }


@pytest.fixture(scope="module")
def api_schema(live_server: BackgroundServer) -> Any:
    base = f"http://127.0.0.1:{live_server.port}"
    spec = json.loads(urllib.request.urlopen(f"{base}/api/openapi.json").read())
    return schemathesis.openapi.from_dict(spec)


def test_no_server_errors(
    api_schema: Any, auth_headers: dict[str, str], live_server: BackgroundServer
) -> None:
    # Driven per operation with schemathesis' own strategies (its pytest plugin does not
    # run under pytest 9); every operation of the document is exercised.
    base = f"http://127.0.0.1:{live_server.port}"
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(base_url=base, headers=auth_headers, timeout=10)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:300]}"
            )
            if response.status_code >= 400 and case.method != "HEAD":
                where = f"{case.method} {case.formatted_path} -> {response.status_code}"
                assert response.headers.get("content-type", [""])[0].startswith(
                    "application/json"
                ), f"{where}: not JSON: {response.text[:300]!r}"
                assert set(response.json()["error"]) >= {"code", "message"}, where

        check()
