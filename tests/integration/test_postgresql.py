"""The service on PostgreSQL (asyncpg): migrations, the HTTP API, review and the
append-only audit log, against a real server on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from server.appkeys import DB
from server.settings import Settings
from tests.support.postgres import PostgresServer
from tests.support.review_data import seed_reviewable_call
from tests.support.review_races import (
    concurrent_claims_answer_409_never_500,
    concurrent_verdicts_make_one_violation,
)
from tests.support.service import Host, make_settings, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, postgres: PostgresServer) -> Settings:
    return make_settings(tmp_path, database_url=postgres.url)


async def test_the_api_runs_on_postgresql(
    app: web.Application, server: TestServer, settings: Settings
) -> None:
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
    async with TestClient(server) as host_client, TestClient(server) as seller:
        host = Host(host_client)
        seller_id, buyer_id, thread_id = await host.eligible_pair()
        await host.user("rev", "reviewer")
        ready = await (await host_client.get("/readyz")).json()
        assert ready["checks"]["database"] == "ok"

        csrf = await sign_in(seller, host, seller_id)
        body = await (await seller.get(f"/api/v1/threads/{thread_id}/call-eligibility")).json()
        assert body == {"allowed": True, "reasons": []}
        resp = await seller.post(
            f"/api/v1/threads/{thread_id}/messages",
            json={"text": "my whatsapp is +44 7700 900123"},
            headers={"X-CSRF-Token": csrf},
        )
        assert (await resp.json())["flags"] == ["contact_details"]

        await seed_reviewable_call(
            app, call_id="pgcall", thread_id=thread_id, seller_id=seller_id, buyer_id=buyer_id
        )
        async with TestClient(server) as reviewer:
            rcsrf = await sign_in(reviewer, host, "rev")
            claim = await reviewer.post(
                "/api/v1/review/calls/pgcall/claim", headers={"X-CSRF-Token": rcsrf}
            )
            assert claim.status == 200
            queue: dict[str, Any] = await (await reviewer.get("/api/v1/review/queue")).json()
            assert [c["call_id"] for c in queue["calls"]] == ["pgcall"]

    async with app[DB]() as session:
        with pytest.raises(Exception, match="append-only"):
            await session.execute(text("UPDATE audit_log SET actor_id = 'x'"))
        await session.rollback()
        with pytest.raises(Exception, match="append-only"):
            await session.execute(text("DELETE FROM audit_log"))


async def test_review_races_and_queue_filters_on_postgresql(
    app: web.Application, server: TestServer
) -> None:
    async with TestClient(server) as host_client:
        host = Host(host_client)
        seller_id, buyer_id, thread_id = await host.eligible_pair()
        for name in ("rev1", "rev2"):
            await host.user(name, "reviewer")
        for call_id, mandatory in (("raced", None), ("verdicts", None), ("reported", ["x"])):
            await seed_reviewable_call(
                app,
                call_id=call_id,
                thread_id=thread_id,
                seller_id=seller_id,
                buyer_id=buyer_id,
                sampled=mandatory is None,
                mandatory=mandatory,
            )
        reviewers = []
        for name in ("rev1", "rev2"):
            client = TestClient(server)
            await client.start_server()
            reviewers.append((client, await sign_in(client, host, name)))
        try:
            await concurrent_claims_answer_409_never_500(app, reviewers, "raced")
            await concurrent_verdicts_make_one_violation(app, reviewers[0], "verdicts", seller_id)
            # The kind filter runs in SQL, on PostgreSQL's JSON too.
            queue = await (await reviewers[0][0].get("/api/v1/review/queue?kind=mandatory")).json()
            assert [c["call_id"] for c in queue["calls"]] == ["reported"]
        finally:
            for client, _ in reviewers:
                await client.close()
