"""Abuse of a call's media path with raw UDP and STUN, against the real server and peers.

- Bounded ICE (DESIGN.md section 8, "ICE scope (contract)"): a participant holding its own
  leg's ICE credentials cannot make the server learn unbounded peer-reflexive candidates
  (raw STUN checks from thousands of source ports); the server never checks private or
  link-local addresses while its host addresses are loopback, never resolves ``.local``
  names, and caps remote candidates; re-offering is rate-limited.
- A burst of 40,000 RTP-looking junk datagrams at a leg's port does not stall its video.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioice.ice
import aioice.stun as stun
import pytest

from signaling import aiortc_patches
from signaling.media_bridge import CallMediaBridge
from signaling.media_errors import InvalidCandidateError
from tests.support.encoded_media import EncodedClip
from tests.support.media_peers import MediaClient, Progress
from tests.support.raw_udp import binding_request, blast, ice_credentials, leg_connection
from tests.support.rtc_client import CallHarness

pytestmark = pytest.mark.integration

BURST_DATAGRAMS = 40_000
CHECK_SOURCES = 3_000


def server_connection(calls: CallHarness, call_id: str, user_id: str) -> aioice.ice.Connection:
    """The server's aioice connection of ``user_id``'s leg (one per leg: bundled)."""
    bridge = calls.local_media(call_id).bridge
    return leg_connection(bridge, user_id)


def check_from_many_ports(port: int, request: bytes, sources: int) -> int:
    """Send ``request`` from ``sources`` fresh UDP sockets; answer how many got a reply."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(sources):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            udp.setblocking(False)
            udp.sendto(request, ("127.0.0.1", port))
            sockets.append(udp)
            if len(sockets) >= 200:  # stay well inside the file-descriptor limit
                sockets.pop(0).close()
        deadline = time.monotonic() + 1.0
        answered = 0
        while time.monotonic() < deadline:
            for udp in sockets:
                with contextlib.suppress(BlockingIOError):
                    udp.recv(2048)
                    answered += 1
            time.sleep(0.05)
        return answered
    finally:
        for udp in sockets:
            udp.close()


def pairs_toward(connection: aioice.ice.Connection, host: str) -> list[Any]:
    return [p for p in connection._check_list if p.remote_addr[0] == host]


# --- peer-reflexive candidates ----------------------------------------------------------


async def test_checks_from_thousands_of_ports_learn_a_bounded_number_of_candidates(
    calls: CallHarness,
) -> None:
    call_id, seller, buyer = await calls.connected_call()
    server_ufrag, server_pwd = ice_credentials(seller.media.answer_sdp or "")
    client_ufrag, _ = ice_credentials(str(seller.media.pc.localDescription.sdp))
    (port,) = seller.media.server_candidate_ports()
    connection = server_connection(calls, call_id, seller.ws.user_id)
    before = aiortc_patches.ice_refusal_counts()
    cpu_before = time.process_time()

    request = binding_request(f"{server_ufrag}:{client_ufrag}", server_pwd)
    await asyncio.to_thread(check_from_many_ports, port, request, CHECK_SOURCES)
    await calls.progress.wait_for(
        lambda: (
            aiortc_patches.ice_refusal_counts().peer_reflexive_over_cap
            >= before.peer_reflexive_over_cap + CHECK_SOURCES // 2
        ),
        "the checks to be refused",
    )
    learned = [c for c in connection._remote_candidates if c.type == "prflx"]
    print(
        f"{CHECK_SOURCES} sources: {len(learned)} peer-reflexive candidates, "
        f"{len(connection._check_list)} pairs, {time.process_time() - cpu_before:.2f} CPU-s"
    )
    # Before the cap: one candidate, one pair and one check task per source port.
    assert len(learned) <= aiortc_patches.MAX_PEER_REFLEXIVE_CANDIDATES
    bound = aiortc_patches.MAX_REMOTE_CANDIDATES + aiortc_patches.MAX_PEER_REFLEXIVE_CANDIDATES
    assert len(connection._check_list) <= bound
    # The call goes on.
    mark = len(buyer.media.received["video"])
    await calls.progress.wait_for(
        lambda: len(buyer.media.received["video"]) >= mark + 30, "video keeps flowing"
    )
    assert call_id in calls.service.live_call_ids


# --- scope, mDNS and the candidate cap, on the bridge alone -------------------------------


def local_private_address() -> str | None:
    """An address of this machine in a private scope (to catch a check sent there)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(("192.0.2.254", 9))  # no packet is sent: this only picks a route
        address = str(udp.getsockname()[0])
        if aiortc_patches.address_scope(address) == "private":
            return address
    return None


@contextlib.contextmanager
def listener(host: str) -> Iterator[socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, 0))
    udp.setblocking(False)
    try:
        yield udp
    finally:
        udp.close()


def received_checks(udp: socket.socket) -> int:
    count = 0
    while True:
        try:
            data = udp.recv(2048)
        except BlockingIOError:
            return count
        with contextlib.suppress(ValueError):
            if stun.parse_message(data).message_method == stun.Method.BINDING:
                count += 1


def offer_with_candidates(offer: str, candidates: list[str]) -> str:
    """The offer with its own candidates replaced by ``candidates`` (in every section: the
    bundled transport takes them from one of them)."""
    out = []
    for line in offer.split("\r\n"):
        if line.startswith("a=candidate:"):
            continue
        out.append(line)
        if line.startswith("a=ice-pwd:"):
            out += [f"a=candidate:{c}" for c in candidates]
    return "\r\n".join(out)


@pytest.fixture
async def bridge() -> AsyncIterator[CallMediaBridge]:
    bridge = CallMediaBridge("call-abuse")
    try:
        yield bridge
    finally:
        await bridge.aclose()


@pytest.fixture
async def offerer(clip: EncodedClip) -> AsyncIterator[MediaClient]:
    client = MediaClient(clip, Progress())
    try:
        yield client
    finally:
        await client.close()


async def test_no_checks_to_private_addresses_while_the_host_addresses_are_loopback(
    bridge: CallMediaBridge, offerer: MediaClient
) -> None:
    private = local_private_address()
    with listener("127.0.0.1") as loopback_socket, contextlib.ExitStack() as stack:
        loopback_port = loopback_socket.getsockname()[1]
        candidates = [f"1 1 udp 2130706431 127.0.0.1 {loopback_port} typ host"]
        private_socket = None
        if private is not None:
            private_socket = stack.enter_context(listener(private))
            port = private_socket.getsockname()[1]
            candidates.append(f"2 1 udp 2130706431 {private} {port} typ host")
        candidates += [
            "3 1 udp 2130706431 10.20.30.40 40000 typ host",
            "4 1 udp 2130706431 169.254.10.20 40000 typ host",
            "5 1 udp 1694498815 192.168.77.1 40000 typ srflx raddr 0.0.0.0 rport 0",
            "6 1 udp 2130706431 4f1c2a3b-aaaa-bbbb-cccc-1234567890ab.local 40000 typ host",
            "7 1 udp 2130706431 224.0.0.251 5353 typ host",
        ]
        before = aiortc_patches.ice_refusal_counts()
        offer = offer_with_candidates(await offerer.create_offer(), candidates)
        await bridge.accept_offer("seller", offer)
        connection = leg_connection(bridge, "seller")

        # The loopback candidate is in the server's scope: it is checked (and re-checked).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        loopback_checks = private_checks = 0
        while loopback_checks < 3:
            assert loop.time() < deadline, "the server never checked the loopback candidate"
            await asyncio.sleep(0.05)
            loopback_checks += received_checks(loopback_socket)
            if private_socket is not None:
                private_checks += received_checks(private_socket)
        assert private_checks == 0, f"the server sent {private_checks} checks to {private}"
        for host in (private, "10.20.30.40", "169.254.10.20", "192.168.77.1", "224.0.0.251"):
            if host is not None:
                assert pairs_toward(connection, host) == [], host
        assert pairs_toward(connection, "127.0.0.1")
        after = aiortc_patches.ice_refusal_counts()
        assert after.mdns_candidates == before.mdns_candidates + 1
        assert after.candidates_out_of_scope >= before.candidates_out_of_scope + 4


async def test_trickled_mdns_and_too_many_candidates_are_refused_with_words(
    bridge: CallMediaBridge, offerer: MediaClient
) -> None:
    await bridge.accept_offer("seller", await offerer.create_offer())
    with pytest.raises(InvalidCandidateError, match=r"mDNS \(\.local\) candidates"):
        await bridge.add_remote_candidate(
            "seller", "candidate:9 1 udp 2130706431 abc-def.local 5000 typ host", None, 0
        )
    ports = itertools.count(41000)
    for _ in range(aiortc_patches.MAX_REMOTE_CANDIDATES):
        line = f"candidate:9 1 udp 2130706431 127.0.0.1 {next(ports)} typ host"
        await bridge.add_remote_candidate("seller", line, None, 0)
    with pytest.raises(InvalidCandidateError, match="too many ICE candidates"):
        line = f"candidate:9 1 udp 2130706431 127.0.0.1 {next(ports)} typ host"
        await bridge.add_remote_candidate("seller", line, None, 0)
    connection = leg_connection(bridge, "seller")
    signalled = [c for c in connection._remote_candidates if c.type != "prflx"]
    assert len(signalled) <= aiortc_patches.MAX_REMOTE_CANDIDATES


async def test_an_offer_naming_hundreds_of_candidates_is_capped(
    bridge: CallMediaBridge, offerer: MediaClient
) -> None:
    candidates = [f"{n} 1 udp 2130706431 127.0.0.1 {42000 + n} typ host" for n in range(300)]
    offer = offer_with_candidates(await offerer.create_offer(), candidates)
    await bridge.accept_offer("seller", offer)
    connection = leg_connection(bridge, "seller")
    assert len(connection._remote_candidates) == aiortc_patches.MAX_REMOTE_CANDIDATES
    assert len(connection._check_list) <= aiortc_patches.MAX_REMOTE_CANDIDATES


# --- offers -------------------------------------------------------------------------------


def with_new_ice_credentials(offer: str) -> str:
    """The same offer from a "fresh" peer connection: new ICE credentials, so a new leg."""
    offer = re.sub(r"^a=ice-ufrag:\S+", f"a=ice-ufrag:{secrets.token_hex(4)}", offer, flags=re.M)
    return re.sub(r"^a=ice-pwd:\S+", f"a=ice-pwd:{secrets.token_hex(12)}", offer, flags=re.M)


async def test_a_seller_re_offering_in_a_loop_is_rate_limited(calls: CallHarness) -> None:
    seller_id, buyer_id, thread_id = await calls.host.eligible_pair()
    seller = await calls.participant(seller_id)
    buyer = await calls.participant(buyer_id)
    call_id = await calls.ring(seller, buyer, thread_id)
    client = MediaClient(calls.clip, calls.progress)
    try:
        offer = await client.create_offer()
        replies = [
            await seller.ws.request("offer", call_id=call_id, sdp=with_new_ice_credentials(offer))
            for _ in range(30)
        ]
    finally:
        await client.close()
    answered = [r for r in replies if r["type"] == "answer"]
    refused = [r["error"] for r in replies if r["type"] == "error"]
    bridge = calls.local_media(call_id).bridge
    assert len(answered) == bridge.stats().legs_started <= 6
    assert len(refused) >= 24
    assert {e["code"] for e in refused} == {"rate_limited"}
    assert "too many offers" in refused[0]["message"]
    assert call_id in calls.service.live_call_ids


# --- junk datagrams -----------------------------------------------------------------------


def longest_gap(arrivals: list[float], start: float, end: float) -> float:
    window = [t for t in arrivals if start <= t <= end]
    return max((b - a for a, b in itertools.pairwise(window)), default=end - start)


async def test_a_burst_of_rtp_looking_junk_does_not_stall_video(calls: CallHarness) -> None:
    call_id, seller, buyer = await calls.connected_call()
    (port,) = seller.media.server_candidate_ports()
    frames = buyer.media.received["video"]
    await calls.progress.wait_for(lambda: len(frames) >= 60, "2 s of video")
    before = aiortc_patches.datagram_drop_counts()
    burst_start = time.monotonic()
    took = await asyncio.to_thread(blast, port, BURST_DATAGRAMS)
    mark = len(frames)
    await calls.progress.wait_for(lambda: len(frames) >= mark + 60, "video after the burst")
    after = aiortc_patches.datagram_drop_counts()
    gap = longest_gap(frames.arrivals, burst_start - 0.5, time.monotonic())
    dropped = after.unknown_source - before.unknown_source
    figures = (
        f"burst of {BURST_DATAGRAMS} in {took:.3f} s: {dropped} dropped at the source check, "
        f"{after.queue_full - before.queue_full} for a full queue; longest video gap {gap:.3f} s"
    )
    print(figures)
    # The junk never reached DTLS/SRTP: what the kernel did not drop (its buffer is capped
    # by net.core.rmem_max) was refused at the source check (none is without the fix).
    assert dropped >= 100, figures
    # The issue saw a 2.5 s stall with Chromium. With aiortc peers the gap is 0.2-0.6 s
    # with or without the source check, about the time the burst takes to arrive (the
    # kernel drops what the socket buffer cannot hold); the check cuts the loop's cost per
    # junk datagram from ~18 us to ~3 us (bench/bench_media_abuse.py). So the bound is the
    # burst's own length plus a second to recover, whatever the shared CPUs make of it.
    assert gap < took + 1.0, figures
    assert call_id in calls.service.live_call_ids
