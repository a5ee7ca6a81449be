"""``/readyz`` proves that the database takes a write, not only that it answers reads."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from server.appkeys import DB

pytestmark = pytest.mark.integration


async def test_ready_only_while_writes_succeed(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    # The database keeps answering reads but refuses every write from now on (as a full
    # disk or a read-only replica would).
    async with client.app[DB]() as session, session.begin():
        await session.execute(
            text(
                "CREATE TRIGGER refuse_writes BEFORE UPDATE ON nodes "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["checks"]["database"].startswith("error")
    async with client.app[DB]() as session, session.begin():
        await session.execute(text("DROP TRIGGER refuse_writes"))
    assert (await client.get("/readyz")).status == 200
