"""Bench: what junk datagrams and forged ICE checks cost a live call, patches on and off.

    .venv/bin/python bench/bench_media_abuse.py [--runs 3] [--burst 40000] [--sources 3000]

One call through ``signaling.media_bridge`` between two aiortc clients on loopback
(pre-encoded VP8 + Opus, nothing encoded or decoded), all in this process. Then:

1. **Junk burst.** ``--burst`` RTP-looking datagrams (V=2, PT 96, junk payload) blasted at
   the seller leg's server port from a plain socket, with the source-address check of
   ``signaling/aiortc_patches.py`` on and off (aioice's ``datagram_received`` restored).
   Printed: how long the burst took to send, the longest gap in the buyer's received
   video, the longest event-loop stall, and the loop-side cost per junk datagram measured
   by handing the same datagrams straight to the leg's socket protocol and waiting until
   the DTLS transport has drained them.
2. **Forged checks.** ``--sources`` authenticated STUN checks (signed with the seller leg's
   own ICE password, as a participant can) from as many source ports, with the bounded-ICE
   patches on and off: peer-reflexive candidates and pairs learned, and the process CPU
   used in the 5 s after.

Everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aioice.ice

from signaling import aiortc_patches
from signaling.media_bridge import CallMediaBridge
from tests.support.encoded_media import EncodedClip, encoded_clip
from tests.support.media_peers import MediaClient, Progress
from tests.support.raw_udp import (
    binding_request,
    blast,
    ice_credentials,
    leg_connection,
    rtp_looking,
)


class Call:
    def __init__(self, clip: EncodedClip) -> None:
        self.progress = Progress()
        self.bridge = CallMediaBridge("bench-abuse")
        self.clients: dict[str, MediaClient] = {}
        self.clip = clip

    async def join(self, participant_id: str) -> MediaClient:
        client = MediaClient(self.clip, self.progress)
        self.clients[participant_id] = client
        answer = await self.bridge.accept_offer(participant_id, await client.create_offer())
        await client.accept_answer(answer)
        await client.wait_connected()
        return client

    def connection(self, participant_id: str) -> aioice.ice.Connection:
        return leg_connection(self.bridge, participant_id)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        await self.bridge.aclose()


class LagSampler:
    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - before - 0.01)

    def __enter__(self) -> LagSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def server_port(client: MediaClient) -> int:
    assert client.answer_sdp is not None
    match = re.search(r"^a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 (\d+)", client.answer_sdp, re.M)
    assert match
    return int(match.group(1))


def source_check(on: bool) -> None:
    original = aiortc_patches._state.original_datagram_received
    assert original is not None
    aioice.ice.StunProtocol.datagram_received = (  # type: ignore[method-assign]
        aiortc_patches._datagram_received if on else original
    )


async def junk_burst(call: Call, burst: int) -> dict[str, float]:
    buyer_video = call.clients["buyer"].received["video"]
    start = time.monotonic()
    with LagSampler() as lag:
        took = await asyncio.to_thread(blast, server_port(call.clients["seller"]), burst)
        await asyncio.sleep(3.0)
    window = [t for t in buyer_video.arrivals if start - 0.5 <= t]
    gap = max((b - a for a, b in itertools.pairwise(window)), default=float("inf"))
    return {"send_s": took, "video_gap_s": gap, "loop_stall_s": lag.worst}


async def loop_cost_per_datagram(call: Call, count: int) -> float:
    """Seconds of loop time per junk datagram from the socket callback to the DTLS drain."""
    connection = call.connection("seller")
    (protocol,) = [p for p in connection._protocols if p.local_candidate.type == "host"]
    junk = [rtp_looking(n) for n in range(count)]
    source = ("127.0.0.1", 9)
    started = time.perf_counter()
    for data in junk:
        protocol.datagram_received(data, source)
    while connection._queue.qsize():
        await asyncio.sleep(0)
    return (time.perf_counter() - started) / count


def send_checks(port: int, request: bytes, sources: int) -> None:
    for _ in range(sources):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            udp.sendto(request, ("127.0.0.1", port))


async def forged_checks(call: Call, sources: int) -> dict[str, float]:
    seller = call.clients["seller"]
    server_ufrag, server_pwd = ice_credentials(seller.answer_sdp or "")
    client_ufrag, _ = ice_credentials(str(seller.pc.localDescription.sdp))
    request = binding_request(f"{server_ufrag}:{client_ufrag}", server_pwd)
    cpu = time.process_time()
    await asyncio.to_thread(send_checks, server_port(seller), request, sources)
    await asyncio.sleep(5.0)
    connection = call.connection("seller")
    return {
        "prflx": sum(1 for c in connection._remote_candidates if c.type == "prflx"),
        "pairs": len(connection._check_list),
        "cpu_s": time.process_time() - cpu,
    }


async def one_call(clip: EncodedClip) -> Call:
    call = Call(clip)
    await call.join("seller")
    await call.join("buyer")
    videos = [c.received["video"] for c in call.clients.values()]
    await call.progress.wait_for(lambda: all(len(v) >= 60 for v in videos), "video both ways")
    return call


async def main(args: argparse.Namespace) -> None:
    aiortc_patches.install_global_patches()
    aiortc_patches.limit_ice_host_addresses(["127.0.0.1"])
    clip = encoded_clip()

    print(f"1. a burst of {args.burst} RTP-looking junk datagrams at one leg ({args.runs} runs)")
    for on in (True, False):
        source_check(on)
        runs: list[dict[str, float]] = []
        costs: list[float] = []
        for _ in range(args.runs):
            call = await one_call(clip)
            try:
                runs.append(await junk_burst(call, args.burst))
                costs.append(await loop_cost_per_datagram(call, 5000))
            finally:
                await call.close()
        name = "source check on " if on else "source check off"

        def median(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        print(
            f"   {name}: sent in {median('send_s'):.2f} s; longest video gap "
            f"{median('video_gap_s'):.3f} s (worst {max(r['video_gap_s'] for r in runs):.3f}); "
            f"longest loop stall {median('loop_stall_s') * 1000:.0f} ms; loop cost "
            f"{statistics.median(costs) * 1e6:.1f} us per junk datagram"
        )
    source_check(True)

    print(f"2. {args.sources} forged checks from as many source ports, own ICE credentials")
    for on in (True, False):
        if not on:
            aiortc_patches.uninstall_global_patches()
            aiortc_patches.install_global_patches()
            for owner, attribute, _new, keep in aiortc_patches._GLOBAL_PATCHES:
                if attribute in ("request_received", "check_incoming"):
                    setattr(owner, attribute, getattr(aiortc_patches._state, keep))
        call = await one_call(clip)
        try:
            result = await forged_checks(call, args.sources)
        finally:
            await call.close()
        name = "bounded ICE on " if on else "bounded ICE off"
        print(
            f"   {name}: {result['prflx']:.0f} peer-reflexive candidates, "
            f"{result['pairs']:.0f} pairs, {result['cpu_s']:.2f} CPU-s in the 5 s after"
        )
    aiortc_patches.uninstall_global_patches()
    aiortc_patches.install_global_patches()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burst", type=int, default=40_000)
    parser.add_argument("--sources", type=int, default=3_000)
    asyncio.run(main(parser.parse_args()))
