"""Fixtures shared by the tests that run real aiortc peers."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestServer

from signaling import aiortc_patches
from tests.support.encoded_media import EncodedClip, encoded_clip
from tests.support.postgres import PostgresServer
from tests.support.rtc_client import CallHarness, SignedIn
from tests.support.service import Host
from tests.support.service_process import ServiceProcess


@pytest.fixture(scope="session")
def clip() -> EncodedClip:
    """Pre-encoded VP8 + Opus, encoded once per test run: peers replay it, never encode."""
    return encoded_clip()


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    # Peers created outside the service (bridge tests, test clients) gather host
    # candidates on loopback only; the service pins its own from settings.
    aiortc_patches.limit_ice_host_addresses(["127.0.0.1"])
    yield
    aiortc_patches.limit_ice_host_addresses(None)


@pytest.fixture
async def calls(
    server: TestServer, host: Host, signed_in: SignedIn, clip: EncodedClip
) -> AsyncIterator[CallHarness]:
    """People with sockets and aiortc peers, calling through the real server."""
    harness = CallHarness(server, host, signed_in, clip)
    harness.watch_transitions()
    try:
        yield harness
    finally:
        await harness.close()


@pytest.fixture
async def services() -> AsyncIterator[list[ServiceProcess]]:
    """Real ``inboxcall serve`` processes a test starts; killed at the end, whatever happened."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        if service.process is not None and service.process.returncode is None:
            await service.kill(signal.SIGKILL)


@pytest.fixture
async def postgres() -> AsyncIterator[PostgresServer]:
    """A throwaway PostgreSQL server on loopback (skipped without it, except in CI)."""
    server = PostgresServer()
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
