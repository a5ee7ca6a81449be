"""A media worker process: the bridge and the recorder of the calls placed on it.

Started by ``MediaWorkerPool`` as ``python -m server.media.worker_main --ipc-fd N
--config JSON``; never by hand. It carries media only: no database, no HTTP. It serves
the requests of ``server.media.ipc`` on the inherited socket and reports leg states,
failures and its load as events. It exits when the serving process goes away (end-of-file
on the socket): the recordings it was writing are crash-safe and the next start of the
serving process on the same data dir recovers them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from server.log_context import configure_logging, log_context
from server.media import ipc
from server.media.local_host import LocalCallMedia, LocalMediaHost, StagingRecorders
from server.owned_tasks import OwnedTasks
from signaling import aiortc_patches
from signaling.media_bandwidth import DEFAULT_MAX_LEG_BITRATE_BPS, BandwidthSettings
from signaling.media_bridge import BridgeSettings
from signaling.media_errors import MediaBridgeError, MediaNegotiationError

log = logging.getLogger("server.media.worker")

LAG_SAMPLE_INTERVAL_S = 0.05
LAG_SAMPLES_KEPT = 1200  # one minute of samples
LOAD_REPORT_INTERVAL_S = 1.0


class WorkerConfig(BaseModel):
    index: int
    staging_dir: str
    ice_host_addresses: list[str] | None
    udp_receive_buffer_bytes: int
    staging_budget_bytes: int | None = None
    # This worker's own slice of INBOXCALL_MEDIA_PORT_MIN..MAX (inclusive), or any port.
    port_range: tuple[int, int] | None = None
    # Bound host address -> the public address announced for it (1:1 NAT).
    announced_addresses: dict[str, str] = {}
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    node_name: str = ""
    max_leg_bitrate_bps: int = DEFAULT_MAX_LEG_BITRATE_BPS
    receiver_driven_bitrate: bool = True


class LoopLagSampler:
    """How late the loop wakes a sleeper: the delay every packet handled on it also sees."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=LAG_SAMPLES_KEPT)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_SAMPLE_INTERVAL_S)
            self.samples.append(max(0.0, loop.time() - before - LAG_SAMPLE_INTERVAL_S))

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.samples)
        if not ordered:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0}

        def pick(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        return {"p50": pick(0.50), "p99": pick(0.99), "max": ordered[-1]}


class MediaWorker:
    def __init__(self, config: WorkerConfig, writer: asyncio.StreamWriter) -> None:
        self._config = config
        self._writer = writer
        staging = StagingRecorders(
            Path(config.staging_dir), budget_bytes=config.staging_budget_bytes
        )
        bridge_settings = BridgeSettings(
            bandwidth=BandwidthSettings(
                max_leg_bitrate_bps=config.max_leg_bitrate_bps,
                receiver_driven=config.receiver_driven_bitrate,
            )
        )
        self._host = LocalMediaHost(lambda: staging, bridge_settings=bridge_settings)
        self._lag = LoopLagSampler()
        self._tasks = OwnedTasks("media worker")

    def send(self, frame: dict[str, Any]) -> None:
        if not self._writer.is_closing():
            ipc.write_frame(self._writer, frame)

    def load(self) -> dict[str, Any]:
        return {
            "calls": len(self._host.calls),
            "cpu_seconds": time.process_time(),
            "loop_lag": self._lag.summary(),
            "datagrams_dropped": aiortc_patches.datagram_drop_counts().queue_full,
        }

    async def _report_load(self) -> None:
        while True:
            await asyncio.sleep(LOAD_REPORT_INTERVAL_S)
            self.send({"event": "load", **self.load()})

    async def serve(self, reader: asyncio.StreamReader) -> None:
        self._tasks.spawn(self._lag.run(), name="worker-loop-lag")
        self._tasks.spawn(self._report_load(), name="worker-load-report")
        self.send({"event": "ready", "pid": os.getpid(), "index": self._config.index})
        while True:
            frame = await ipc.read_frame(reader)
            if frame is None:
                return
            if frame.get("op") == "shutdown":
                await self._host.aclose()
                self.send({"id": frame.get("id"), "result": None})
                await self._writer.drain()
                return
            self._tasks.spawn(self._answer(frame), name=f"worker-op-{frame.get('op')}")

    async def _answer(self, frame: dict[str, Any]) -> None:
        request_id = frame.get("id")
        args = frame.get("args") or {}
        call_id = args.get("call_id")
        with log_context(call_id=call_id if isinstance(call_id, str) else None):
            try:
                result = await self._handle(str(frame.get("op")), args)
            except Exception as exc:
                if not isinstance(exc, MediaBridgeError):
                    log.exception("worker op %s failed", frame.get("op"))
                self.send({"id": request_id, "error": ipc.error_to_wire(exc)})
            else:
                self.send({"id": request_id, "result": result})

    def _call(self, call_id: str) -> LocalCallMedia:
        media = self._host.calls.get(call_id)
        if media is None:
            raise MediaNegotiationError("bridge_closed", "the call has no media here")
        return media

    async def _handle(self, op: str, args: dict[str, Any]) -> Any:
        match op:
            case "open_call":
                call_id = str(args["call_id"])
                await self._host.open_call(
                    call_id,
                    on_leg_state=lambda pid, state: self.send(
                        {
                            "event": "leg_state",
                            "call_id": call_id,
                            "participant_id": pid,
                            "state": state,
                        }
                    ),
                    on_failure=lambda detail: self.send(
                        {"event": "failure", "call_id": call_id, "detail": detail.value}
                    ),
                    on_notice=lambda pid, notice: self.send(
                        {
                            "event": "notice",
                            "call_id": call_id,
                            "participant_id": pid,
                            "notice": notice,
                        }
                    ),
                )
                return None
            case "accept_offer":
                media = self._call(args["call_id"])
                return await media.accept_offer(args["participant_id"], args["sdp"])
            case "add_candidate":
                await self._call(args["call_id"]).add_remote_candidate(
                    args["participant_id"],
                    args["candidate"],
                    args.get("sdp_mid"),
                    args.get("sdp_mline_index"),
                )
                return None
            case "set_media":
                await self._call(args["call_id"]).set_media_enabled(
                    args["participant_id"], args["kind"], bool(args["enabled"])
                )
                return None
            case "start_recording":
                await self._call(args["call_id"]).start_recording()
                return None
            case "stats":
                return ipc.stats_to_wire(await self._call(args["call_id"]).stats())
            case "close_call":
                closing = self._host.calls.get(str(args["call_id"]))
                if closing is None:
                    return []
                return [ipc.recording_to_wire(r) for r in await closing.aclose()]
            case "load":
                return self.load()
        raise ValueError(f"unknown op {op!r}")

    async def aclose(self) -> None:
        await self._tasks.aclose()


async def _main(config: WorkerConfig, fd: int) -> None:
    aiortc_patches.configure_media_sockets(
        config.ice_host_addresses,
        udp_receive_buffer_bytes=config.udp_receive_buffer_bytes,
        port_range=config.port_range,
        announced=config.announced_addresses,
    )
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    worker = MediaWorker(config, writer)
    try:
        await worker.serve(reader)
    finally:
        await worker.aclose()
        writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="inboxcall-media-worker")
    parser.add_argument("--ipc-fd", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config = WorkerConfig.model_validate_json(args.config)
    configure_logging(
        config.log_format,
        config.node_name or socket.gethostname(),
        config.log_level,
        media_worker=str(config.index),
    )
    asyncio.run(_main(config, args.ipc_fd))
    # Serving process gone or shutdown asked: leave now, without waiting for threads.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
