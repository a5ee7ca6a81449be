"""Bench: N concurrent calls through the encoded-frame bridge vs aiortc's stock MediaRelay.

    .venv/bin/python bench/bench_bridge.py --calls 3 --seconds 20 [--resolution 1280x720]

For each pipeline ("bridge": signaling.media_bridge, "stock": aiortc's MediaRelay, which
decodes every frame and re-encodes it for the other leg), a server child process runs N
calls; this process runs 2N aiortc clients that send a pre-encoded 640x480 VP8 + Opus
clip (no encoding on the client side) and count what they receive through the
encoded-frame tap (no decoding either). The server's CPU is read in the server process
itself (``time.process_time()``, every thread included), so the clients' CPU is not
counted; its event-loop lag is sampled there too.

Printed per pipeline: server CPU-seconds per call-second, frames sent vs received (after
the sources stop and the pipes drain; every jitter buffer on the way, the server's and
the client's, keeps back the last video frame and four audio frames, which are not
counted as lost), received frame rate during the window, and loop lag p50/p99; then the
stock/bridge CPU ratio.
Everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from recorder import CallRecorder
from signaling import aiortc_patches
from signaling.media_bridge import CallMediaBridge
from signaling.media_sink import EncodedFrame, MediaKind
from tests.support.encoded_media import encoded_clip
from tests.support.media_peers import MediaClient, Progress

PARTICIPANTS = ("seller", "buyer")
# Each jitter buffer on the way (the server's receiver, then the client's) keeps back
# the last video frame and the last four audio frames until more arrive.
JITTER_LAG = {"video": 2, "audio": 8}
WARMUP_SECONDS = 2.0
DRAIN_SECONDS = 2.0


# ------------------------------------------------------------------ server side


class CountingSink:
    """Stands in for the recorder: takes every frame, as cheaply as a queue put."""

    def __init__(self) -> None:
        self.frames = 0

    def on_frame(self, frame: EncodedFrame) -> None:
        self.frames += 1

    def on_media_state(
        self, participant_id: str, kind: MediaKind, enabled: bool, at: float
    ) -> None:
        pass


class DeferredTrack(MediaStreamTrack):
    """The stock pipeline's sender track: the other participant's relayed track, once known."""

    def __init__(self, kind: str, source: asyncio.Future[MediaStreamTrack]) -> None:
        super().__init__()
        self.kind = kind
        self._source = source

    async def recv(self) -> Any:
        source = await self._source
        return await source.recv()


class StockRelayCall:
    """aiortc's documented relay: RemoteStreamTrack (decoded) -> MediaRelay -> sender (encodes)."""

    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.pcs: list[RTCPeerConnection] = []
        self.sources: dict[tuple[str, str], asyncio.Future[MediaStreamTrack]] = {}

    def _source(self, participant_id: str, kind: str) -> asyncio.Future[MediaStreamTrack]:
        key = (participant_id, kind)
        if key not in self.sources:
            self.sources[key] = asyncio.get_running_loop().create_future()
        return self.sources[key]

    async def accept_offer(self, participant_id: str, offer_sdp: str) -> str:
        other = PARTICIPANTS[1 - PARTICIPANTS.index(participant_id)]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.append(pc)
        for kind in ("audio", "video"):
            pc.addTransceiver(DeferredTrack(kind, self._source(other, kind)), direction="sendrecv")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._source(participant_id, track.kind).set_result(self.relay.subscribe(track))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def stats(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        for pc in self.pcs:
            await pc.close()
        for future in self.sources.values():
            future.cancel()


class BridgeCall:
    """The bridge with a counting sink, or with the real recorder ("recorded" pipeline)."""

    def __init__(self, call_id: str, record_to: Path | None = None) -> None:
        self.recorder = CallRecorder(call_id, record_to / call_id) if record_to else None
        self.sink: CountingSink | CallRecorder = self.recorder or CountingSink()
        self.bridge = CallMediaBridge(call_id, sink=self.sink)

    async def accept_offer(self, participant_id: str, offer_sdp: str) -> str:
        return await self.bridge.accept_offer(participant_id, offer_sdp)

    def stats(self) -> dict[str, Any]:
        stats = self.bridge.stats()
        totals = {
            "frames_out_dropped": sum(s.frames_out_dropped for s in stats.streams),
            "frames_to_sink": stats.frames_to_sink,
            "keyframe_requests_sent": sum(s.keyframe_requests_sent for s in stats.streams),
        }
        if self.recorder is not None:
            totals["recorder_worker_cpu_ms"] = round(
                self.recorder.stats().worker_cpu_seconds * 1000
            )
        for kind in ("video", "audio"):
            totals[f"{kind}_in"] = sum(s.frames_in for s in stats.streams if s.kind == kind)
            totals[f"{kind}_out"] = sum(s.frames_out for s in stats.streams if s.kind == kind)
        return totals

    async def aclose(self) -> None:
        await self.bridge.aclose()
        if self.recorder is not None:
            await self.recorder.aclose()


class LoopLagMonitor:
    """Samples how late a 10 ms timer fires: the event loop's responsiveness."""

    INTERVAL = 0.010

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.recording = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.INTERVAL)
            if self.recording:
                self.samples.append(loop.time() - start - self.INTERVAL)


async def serve(mode: str, conn: Connection) -> None:
    aiortc_patches.limit_ice_host_addresses(["127.0.0.1"])
    # process_time() counts every thread of this process: the recorder's worker included.
    record_to = Path(tempfile.mkdtemp(prefix="bench-recordings-"))
    calls: dict[str, BridgeCall | StockRelayCall] = {}
    lag = LoopLagMonitor()
    lag_task = asyncio.create_task(lag.run(), name="loop-lag")
    done = asyncio.Event()
    mark: dict[str, float] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            op = request["op"]
            reply: dict[str, Any] = {}
            if op == "offer":
                call = calls.get(request["call"])
                if call is None:
                    call_id = request["call"]
                    if mode == "stock":
                        call = calls[call_id] = StockRelayCall()
                    else:
                        call = calls[call_id] = BridgeCall(
                            call_id, record_to if mode == "recorded" else None
                        )
                reply["answer"] = await call.accept_offer(request["participant"], request["sdp"])
            elif op == "start":
                lag.samples.clear()
                lag.recording = True
                mark["cpu"], mark["wall"] = time.process_time(), time.monotonic()
            elif op == "stop":
                lag.recording = False
                samples = sorted(lag.samples) or [0.0]
                reply = {
                    "cpu": time.process_time() - mark["cpu"],
                    "wall": time.monotonic() - mark["wall"],
                    "lag_p50": samples[len(samples) // 2],
                    "lag_p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
                    "lag_max": samples[-1],
                }
            elif op == "stats":
                merged: dict[str, int] = {}
                for call in calls.values():
                    for key, value in call.stats().items():
                        merged[key] = merged.get(key, 0) + value
                reply["stats"] = merged
            elif op == "close":
                for call in calls.values():
                    await call.aclose()
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
            if op == "close":
                break
        writer.close()
        done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=1 << 20)
    conn.send(server.sockets[0].getsockname()[1])
    await done.wait()
    server.close()
    lag_task.cancel()
    await asyncio.gather(lag_task, return_exceptions=True)
    shutil.rmtree(record_to, ignore_errors=True)


def server_main(mode: str, conn: Connection) -> None:
    profile_to = os.environ.get("BENCH_PROFILE")
    if profile_to:
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.runctx("asyncio.run(serve(mode, conn))", globals(), locals())
        profiler.dump_stats(f"{profile_to}.{mode}")
    else:
        asyncio.run(serve(mode, conn))


# ------------------------------------------------------------------ client side


class Rpc:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, **request: Any) -> dict[str, Any]:
        self.writer.write(json.dumps(request).encode() + b"\n")
        await self.writer.drain()
        reply: dict[str, Any] = json.loads(await self.reader.readline())
        return reply


@dataclass
class Result:
    mode: str
    calls: int
    seconds: float
    cpu_per_call_second: float
    sent: dict[str, int]
    received: dict[str, int]
    lost: dict[str, int]
    fps: dict[str, float]
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    server_stats: dict[str, int]

    @property
    def cpu_ms_per_delivered_frame(self) -> float:
        """Fair when a pipeline cannot keep up: it then spends less CPU per call-second."""
        frames_per_call_second = 2 * (self.fps["video"] + self.fps["audio"])
        return 1000 * self.cpu_per_call_second / max(frames_per_call_second, 1e-9)


def _counts(
    clients: list[tuple[MediaClient, MediaClient]],
) -> tuple[dict[str, int], dict[str, int]]:
    sent = {"video": 0, "audio": 0}
    received = {"video": 0, "audio": 0}
    for pair in clients:
        for client in pair:
            for kind in sent:
                sent[kind] += len(client.sources[kind].sent)
                received[kind] += len(client.received[kind])
    return sent, received


async def run_pipeline(
    mode: str, calls: int, seconds: float, resolution: tuple[int, int]
) -> Result:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=server_main, args=(mode, child), name=f"bench-{mode}-server")
    process.start()
    try:
        port = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        rpc = Rpc(reader, writer)
        clip = encoded_clip(*resolution)
        progress = Progress()
        pairs: list[tuple[MediaClient, MediaClient]] = []
        for index in range(calls):
            pair = (MediaClient(clip, progress), MediaClient(clip, progress))
            for participant_id, client in zip(PARTICIPANTS, pair, strict=True):
                for source in client.sources.values():
                    source.pause()
                offer = await client.create_offer()
                reply = await rpc.call(
                    op="offer", call=f"call-{index}", participant=participant_id, sdp=offer
                )
                await client.accept_answer(reply["answer"])
            pairs.append(pair)
        everyone = [client for pair in pairs for client in pair]
        await progress.wait_for(
            lambda: all(c.pc.connectionState == "connected" for c in everyone),
            "all clients connected",
            timeout=60,
        )
        for client in everyone:
            for source in client.sources.values():
                source.resume()
        await asyncio.sleep(WARMUP_SECONDS)

        _sent0, received0 = _counts(pairs)
        await rpc.call(op="start")
        await asyncio.sleep(seconds)
        window = await rpc.call(op="stop")
        _sent1, received1 = _counts(pairs)

        for client in everyone:
            for source in client.sources.values():
                source.pause()
        await asyncio.sleep(DRAIN_SECONDS)
        sent, received = _counts(pairs)
        server_stats = (await rpc.call(op="stats"))["stats"]
        await rpc.call(op="close")
        writer.close()
        for client in everyone:
            await client.close()
    finally:
        await asyncio.get_running_loop().run_in_executor(None, process.join, 30)
        if process.is_alive():
            process.terminate()
            process.join()

    streams = 2 * calls
    return Result(
        mode=mode,
        calls=calls,
        seconds=window["wall"],
        cpu_per_call_second=window["cpu"] / (calls * window["wall"]),
        sent=sent,
        received=received,
        lost={k: max(0, sent[k] - received[k] - JITTER_LAG[k] * streams) for k in sent},
        fps={k: (received1[k] - received0[k]) / window["wall"] / streams for k in sent},
        lag_p50_ms=window["lag_p50"] * 1000,
        lag_p99_ms=window["lag_p99"] * 1000,
        lag_max_ms=window["lag_max"] * 1000,
        server_stats=server_stats,
    )


def report(result: Result) -> None:
    print(
        f"{result.mode:>6}: {result.calls} calls x {result.seconds:.1f} s | "
        f"server CPU {result.cpu_per_call_second:.3f} CPU-s per call-second "
        f"({result.cpu_ms_per_delivered_frame:.2f} CPU-ms per delivered frame) | "
        f"video sent {result.sent['video']} received {result.received['video']} "
        f"lost {result.lost['video']} ({result.fps['video']:.1f} fps/stream) | "
        f"audio sent {result.sent['audio']} received {result.received['audio']} "
        f"lost {result.lost['audio']} ({result.fps['audio']:.1f} fps/stream) | "
        f"loop lag p50 {result.lag_p50_ms:.1f} ms p99 {result.lag_p99_ms:.1f} ms "
        f"max {result.lag_max_ms:.1f} ms"
        + (f" | {result.server_stats}" if result.server_stats else ""),
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3, help="concurrent calls (default 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window (default 20)")
    parser.add_argument(
        "--resolution", default="640x480", help="WIDTHxHEIGHT of the clip (default 640x480)"
    )
    parser.add_argument(
        "--pipelines",
        default="bridge,recorded,stock",
        help="comma-separated: bridge, recorded (bridge + recorder), stock (default all)",
    )
    args = parser.parse_args()
    aiortc_patches.limit_ice_host_addresses(["127.0.0.1"])
    started = time.monotonic()
    width, height = (int(n) for n in args.resolution.split("x"))
    encoded_clip(width, height)  # once, before anything is measured
    print(f"{args.calls} calls, {width}x{height} VP8 30 fps + Opus, both directions", flush=True)
    results = {}
    for mode in args.pipelines.split(","):
        results[mode] = await run_pipeline(mode, args.calls, args.seconds, (width, height))
        report(results[mode])
    if "bridge" in results and "stock" in results:
        ratio = results["stock"].cpu_per_call_second / max(
            results["bridge"].cpu_per_call_second, 1e-9
        )
        per_frame = results["stock"].cpu_ms_per_delivered_frame / max(
            results["bridge"].cpu_ms_per_delivered_frame, 1e-9
        )
        print(
            f"stock/bridge server CPU per call-second: {ratio:.1f}x, per delivered frame: "
            f"{per_frame:.1f}x (goal: bridge at most 1/10 of stock per call: "
            f"{'met' if ratio >= 10 else 'NOT met'})"
        )
    if "bridge" in results and "recorded" in results:
        added = (
            results["recorded"].cpu_per_call_second
            / max(results["bridge"].cpu_per_call_second, 1e-9)
            - 1
        )
        print(
            f"recording adds {added * 100:+.1f} % to the server CPU of a forwarded call "
            f"(goal: at most +10 %: {'met' if added <= 0.10 else 'NOT met'})"
        )
    print(
        f"bench took {time.monotonic() - started:.0f} s; median loop lag across pipelines "
        f"{statistics.median(r.lag_p50_ms for r in results.values()):.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
