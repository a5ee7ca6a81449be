"""Shared fixtures: a real aiohttp server on loopback with a fresh SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.settings import Settings
from tests.support.service import Host, make_settings, sign_in


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def server(app: web.Application) -> AsyncIterator[TestServer]:
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


ClientFactory = Callable[[], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def new_client(server: TestServer) -> AsyncIterator[ClientFactory]:
    """Each client has its own cookie jar: one per signed-in person."""
    clients: list[TestClient[Any, Any]] = []

    async def factory() -> TestClient[Any, Any]:
        client = TestClient(server)
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def client(new_client: ClientFactory) -> TestClient[Any, Any]:
    return await new_client()


@pytest.fixture
def host(client: TestClient[Any, Any]) -> Host:
    return Host(client)


@pytest.fixture
def signed_in(
    new_client: ClientFactory, host: Host
) -> Callable[[str], Awaitable[tuple[TestClient[Any, Any], str]]]:
    async def factory(user_id: str) -> tuple[TestClient[Any, Any], str]:
        c = await new_client()
        csrf = await sign_in(c, host, user_id)
        return c, csrf

    return factory
