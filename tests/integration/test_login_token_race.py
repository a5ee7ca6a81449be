"""A single-use login token redeemed by many requests at once signs in exactly once,
on SQLite and on a real PostgreSQL (issue 13, finding 4: 7 to 11 sessions from 12)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from server.appkeys import DB
from server.db.models import UserSession
from server.settings import Settings
from tests.support.postgres import PostgresServer
from tests.support.service import Host, make_settings

pytestmark = pytest.mark.integration

CONCURRENT = 12


@pytest.fixture(params=["sqlite", "postgresql"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    if request.param == "sqlite":
        yield make_settings(tmp_path)
        return
    postgres = PostgresServer()
    try:
        await postgres.start()
        yield make_settings(tmp_path, database_url=postgres.url)
    finally:
        await postgres.stop()


async def test_concurrent_redemptions_of_one_login_token_give_one_session(
    new_client: Any, host: Host, app: web.Application
) -> None:
    seller, _, _ = await host.eligible_pair()
    url = await host.login_url(seller)
    path = url[url.index("/login") :]
    browsers: list[TestClient[Any, Any]] = [await new_client() for _ in range(CONCURRENT)]

    answers = await asyncio.gather(*(b.get(path, allow_redirects=False) for b in browsers))

    statuses = sorted(a.status for a in answers)
    assert statuses == [302] + [401] * (CONCURRENT - 1)
    for answer in answers:
        if answer.status == 401:
            assert (await answer.json())["error"]["code"] == "login_token_used"
    signed_in = [b for b in browsers if (await b.get("/api/v1/me")).status == 200]
    assert len(signed_in) == 1
    async with app[DB]() as session:
        assert await session.scalar(select(func.count()).select_from(UserSession)) == 1
