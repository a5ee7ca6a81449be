"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document.

A real server runs on loopback in a background thread with demo data. Every operation is
fuzzed signed in as each role (seller, buyer, reviewer, admin: each with its session and
CSRF token) and with the integration key, so the fuzzer reaches past authentication into
validation and the handlers of every role. Every answer must conform to the document: no
5xx, a documented status code, the documented content type and response schema (the
error answers each route can give are declared there too).
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
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

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


# One demo user per role; the integration API is the host's, reached with the key alone.
ROLES = {
    "seller": "seller-sam",
    "buyer": "buyer-vera",
    "reviewer": "reviewer-rey",
    "admin": "admin-ada",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_ROLE = 12


def signed_in_headers(base: str, user_id: str) -> dict[str, str]:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/login/demo/{user_id}").read()
    me = json.loads(opener.open(f"{base}/api/v1/me").read())
    assert me["user"]["id"] == user_id, me
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return {"Cookie": cookie, "X-CSRF-Token": me["csrf_token"]}


@pytest.fixture(scope="module")
def role_headers(live_server: BackgroundServer) -> dict[str, dict[str, str]]:
    base = f"http://127.0.0.1:{live_server.port}"
    return {role: signed_in_headers(base, user_id) for role, user_id in ROLES.items()}


@pytest.fixture(scope="module")
def api_schema(live_server: BackgroundServer) -> Any:
    base = f"http://127.0.0.1:{live_server.port}"
    spec = json.loads(urllib.request.urlopen(f"{base}/api/openapi.json").read())
    return schemathesis.openapi.from_dict(spec)


def fuzz(operation: Any, base: str, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_ROLE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the failure is printed as is
    )
    def check(case: Any) -> None:
        response = case.call(base_url=base, headers=headers, timeout=10)
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400 and case.method != "HEAD":
            assert set(response.json()["error"]) >= {"code", "message"}

    check()


def test_every_role_gets_answers_that_conform_to_the_document(
    api_schema: Any, role_headers: dict[str, dict[str, str]], live_server: BackgroundServer
) -> None:
    # Driven per operation with schemathesis' own strategies (its pytest plugin does not
    # run under pytest 9); every operation of the document is exercised.
    base = f"http://127.0.0.1:{live_server.port}"
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    for operation in operations:
        integration = operation.path.startswith("/api/v1/integration/")
        callers = (
            {"host": {"Authorization": f"Bearer {INTEGRATION_KEY}"}}
            if integration
            else {role: headers for role, headers in role_headers.items()}
        )
        for role, headers in callers.items():
            try:
                fuzz(operation, base, headers)
            except (Exception, BaseExceptionGroup) as exc:  # collect all: one run shows every gap
                failures.append(f"[{role}] {operation.label}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
