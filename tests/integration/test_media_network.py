"""Media ports and announced addresses, through a real media worker process.

The worker binds its media sockets on 127.0.0.1 inside ``INBOXCALL_MEDIA_PORT_MIN..MAX``
and announces 203.0.113.7 (a documentation address no interface has), as a node behind a
cloud's 1:1 NAT announces its public address. The answers carry only that address, on
ports of the range; the legs still connect (the worker's own checks reach the loopback
peers, which learn its bound address as peer-reflexive), so announcing breaks nothing.
When every port of the range is held, a new leg is refused with a clear error.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from server.settings import Settings
from tests.support.media_peers import MediaClient
from tests.support.rtc_client import CallHarness
from tests.support.service import make_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOUND = "127.0.0.1"
ANNOUNCED = "203.0.113.7"
CANDIDATE = re.compile(
    r"^a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ (\w+)", re.MULTILINE | re.IGNORECASE
)


def free_port_pair() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` free on loopback, just now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((BOUND, 0))
            low = int(probe.getsockname()[1])
        if low >= 65535:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((BOUND, low + 1))
        except OSError:
            continue
        return low
    raise AssertionError("no two consecutive free UDP ports")


@pytest.fixture
def port_low() -> int:
    return free_port_pair()


@pytest.fixture
def settings(tmp_path: Path, port_low: int) -> Settings:
    return make_settings(
        tmp_path,
        media_workers=1,
        ice_host_addresses=BOUND,
        ice_announced_addresses=ANNOUNCED,
        media_port_min=port_low,
        media_port_max=port_low + 1,
    )


def server_candidates(answer_sdp: str | None) -> list[tuple[str, int, str]]:
    assert answer_sdp is not None
    return [(m.group(1), int(m.group(2)), m.group(3)) for m in CANDIDATE.finditer(answer_sdp)]


async def test_announced_address_and_port_range_carry_a_call_and_a_full_range_refuses(
    calls: CallHarness, port_low: int
) -> None:
    call_id, seller, buyer = await calls.connected_call()

    # Each answer offers only the announced address, on a port of the range.
    used = set()
    for p in (seller, buyer):
        candidates = server_candidates(p.media.answer_sdp)
        assert candidates, "the answer carries no candidate"
        for host, port, kind in candidates:
            assert (host, kind) == (ANNOUNCED, "host")
            assert port_low <= port <= port_low + 1
            used.add(port)
    assert used == {port_low, port_low + 1}
    await calls.progress.wait_for(
        lambda: all(len(p.media.received["video"]) >= 30 for p in (seller, buyer)),
        "video both ways through the range's sockets",
    )

    # Both ports held by the live call: the next leg is refused, in words, and nothing else.
    other_seller_id, other_buyer_id, thread_id = await calls.host.eligible_pair("-2")
    other_seller = await calls.participant(other_seller_id)
    other_buyer = await calls.participant(other_buyer_id)
    other_call = await calls.ring(other_seller, other_buyer, thread_id)
    refused_peer = MediaClient(calls.clip, calls.progress)
    try:
        peer_sdp = await refused_peer.create_offer()
    finally:
        await refused_peer.close()
    error = await other_seller.ws.error("offer", "unavailable", call_id=other_call, sdp=peer_sdp)
    assert f"every media port ({port_low}-{port_low + 1}) is in use" in error["message"]
    assert calls.service.live_call(call_id) is not None, "the live call went on"

    # Once the first call ends its ports are free again: the refused seller's next offer works.
    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)
    retry = await other_seller.connect_media(other_call)
    # (the same bundled candidate is listed under both m-lines)
    [(host, port, _)] = set(server_candidates(retry.answer_sdp))
    assert host == ANNOUNCED and port in (port_low, port_low + 1)
