"""The node's media worker processes: started, supervised, replaced, and given calls.

Each worker is a ``server.media.worker_main`` process connected by a socketpair. A call
is placed on the live worker with the fewest calls, and both of its legs stay there. A
worker that dies fails only its own calls (``on_failure(MEDIA_WORKER_LOST)``); closing
such a call recovers its recordings from the staging folder, as after a crash, and a new
worker takes the dead one's place (with a growing pause if workers keep dying at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from recorder import FinalisedRecording, recover_recording, recoverable_manifests
from server.media import ipc
from server.media.call_media import (
    CallMediaStats,
    LegStateListener,
    MediaFailureListener,
    MediaNotice,
    MediaNoticeListener,
    MediaUnavailableError,
)
from server.media.staging_space import StagingSpace
from server.media.worker_main import WorkerConfig
from signaling.call_state import FailureDetail
from signaling.media_bandwidth import DEFAULT_MAX_LEG_BITRATE_BPS
from signaling.media_errors import MediaNegotiationError
from signaling.media_sink import MediaKind

log = logging.getLogger(__name__)

WORKER_START_TIMEOUT_S: Final = 30.0
REQUEST_TIMEOUT_S: Final = 30.0
SHUTDOWN_TIMEOUT_S: Final = 10.0
EXIT_GRACE_S: Final = 2.0
RESTART_PAUSE_S: Final = (0.2, 1.0, 5.0, 10.0)
STABLE_AFTER_S: Final = 30.0


class MediaWorkerLost(Exception):
    """The worker carrying a call's media died before it answered."""


@dataclass
class WorkerLoad:
    calls: int = 0
    cpu_seconds: float = 0.0
    loop_lag: dict[str, float] = field(default_factory=dict)
    datagrams_dropped: int = 0


class WorkerProcess:
    """One running media worker process and the calls placed on it."""

    def __init__(self, index: int, config: WorkerConfig) -> None:
        self.index = index
        self._config = config
        self.pid: int | None = None
        self.ready = False
        self.alive = False
        self.calls: dict[str, RemoteCallMedia] = {}
        self.load = WorkerLoad()
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._stopping = False
        self._settled = asyncio.Event()  # ready, or gone before it was
        self._gone = asyncio.Event()

    async def start(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server.media.worker_main",
                "--ipc-fd",
                str(child_sock.fileno()),
                "--config",
                self._config.model_dump_json(),
                pass_fds=(child_sock.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            child_sock.close()
        self.pid = self._proc.pid
        self.alive = True
        reader, self._writer = await asyncio.open_unix_connection(sock=parent_sock)
        self._reader_task = asyncio.get_running_loop().create_task(
            self._read(reader), name=f"media-worker-{self.index}-reader"
        )
        try:
            async with asyncio.timeout(WORKER_START_TIMEOUT_S):
                await self._settled.wait()
        except TimeoutError:
            log.error("media worker %d did not start in time", self.index)
            self.kill()
        if not self.ready:
            await self.wait_gone()
            raise RuntimeError(f"media worker {self.index} failed to start")
        log.info("media worker %d started (pid %s)", self.index, self.pid)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                frame = await ipc.read_frame(reader)
                if frame is None:
                    break
                self._on_frame(frame)
        except (ipc.IpcError, ValueError, ConnectionError) as exc:
            log.error("media worker %d sent garbage (%s); stopping it", self.index, exc)
            self.kill()
        finally:
            await self._lost()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        if "event" in frame:
            self._on_event(frame)
            return
        future = self._pending.pop(int(frame.get("id") or 0), None)
        if future is None or future.done():
            return
        if "error" in frame:
            future.set_exception(ipc.error_from_wire(frame["error"]))
        else:
            future.set_result(frame.get("result"))

    def _on_event(self, frame: dict[str, Any]) -> None:
        match frame["event"]:
            case "ready":
                self.ready = True
                self._settled.set()
            case "load":
                self.load = WorkerLoad(
                    calls=int(frame.get("calls", 0)),
                    cpu_seconds=float(frame.get("cpu_seconds", 0.0)),
                    loop_lag=dict(frame.get("loop_lag") or {}),
                    datagrams_dropped=int(frame.get("datagrams_dropped", 0)),
                )
            case "leg_state":
                call = self.calls.get(str(frame.get("call_id")))
                if call is not None:
                    call.on_worker_leg_state(str(frame["participant_id"]), str(frame["state"]))
            case "failure":
                call = self.calls.get(str(frame.get("call_id")))
                if call is not None:
                    call.on_worker_failure(FailureDetail(frame["detail"]))
            case "notice":
                call = self.calls.get(str(frame.get("call_id")))
                notice = frame.get("notice")
                if call is not None and notice in ("video_paused", "video_resumed"):
                    call.on_worker_notice(str(frame["participant_id"]), notice)

    async def _lost(self) -> None:
        was_alive = self.alive
        self.alive = False
        self.ready = False
        for future in self._pending.values():
            if not future.done():
                future.set_exception(MediaWorkerLost(f"media worker {self.index} died"))
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()
        if self._proc is not None:
            # End-of-file: the worker is exiting or dead. Give it a moment, then make sure.
            try:
                async with asyncio.timeout(EXIT_GRACE_S):
                    code = await self._proc.wait()
            except TimeoutError:
                self.kill()
                code = await self._proc.wait()
            if was_alive and not self._stopping:
                log.warning("media worker %d (pid %s) exited with %s", self.index, self.pid, code)
            else:
                log.info("media worker %d (pid %s) stopped", self.index, self.pid)
        self._gone.set()
        self._settled.set()
        for call in list(self.calls.values()):
            call.on_worker_lost()

    async def request(self, op: str, **args: Any) -> Any:
        if not self.alive or self._writer is None:
            raise MediaWorkerLost(f"media worker {self.index} is not running")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            ipc.write_frame(self._writer, {"id": request_id, "op": op, "args": args})
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                return await future
        finally:
            self._pending.pop(request_id, None)

    def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def wait_gone(self) -> None:
        await self._gone.wait()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)

    async def shutdown(self) -> None:
        """Ask the worker to finish and exit; kill it if it does not in time."""
        self._stopping = True
        if self.alive:
            try:
                async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                    await self.request("shutdown")
                    await self._gone.wait()
            except (TimeoutError, MediaWorkerLost):
                pass
        self.kill()
        await self.wait_gone()


class RemoteCallMedia:
    """A call's media on a worker process, driven over IPC."""

    def __init__(
        self,
        call_id: str,
        worker: WorkerProcess,
        staging: Path,
        on_leg_state: LegStateListener,
        on_failure: MediaFailureListener,
        *,
        on_notice: MediaNoticeListener | None = None,
    ) -> None:
        self._call_id = call_id
        self.worker = worker
        self._staging = staging
        self._on_leg_state = on_leg_state
        self._on_failure = on_failure
        self._on_notice = on_notice
        self._legs: dict[str, str] = {}
        self._lost = False
        self._closed: asyncio.Future[list[FinalisedRecording]] | None = None

    @property
    def call_id(self) -> str:
        return self._call_id

    async def _request(self, op: str, **args: Any) -> Any:
        if self._lost:
            raise MediaNegotiationError("bridge_closed", "the call's media worker died")
        try:
            return await self.worker.request(op, call_id=self._call_id, **args)
        except MediaWorkerLost:
            raise MediaNegotiationError("bridge_closed", "the call's media worker died") from None

    async def accept_offer(self, participant_id: str, offer_sdp: str) -> str:
        return str(
            await self._request("accept_offer", participant_id=participant_id, sdp=offer_sdp)
        )

    async def add_remote_candidate(
        self,
        participant_id: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        await self._request(
            "add_candidate",
            participant_id=participant_id,
            candidate=candidate,
            sdp_mid=sdp_mid,
            sdp_mline_index=sdp_mline_index,
        )

    async def set_media_enabled(self, participant_id: str, kind: MediaKind, enabled: bool) -> None:
        await self._request("set_media", participant_id=participant_id, kind=kind, enabled=enabled)

    def leg_state(self, participant_id: str) -> str | None:
        return self._legs.get(participant_id)

    async def start_recording(self) -> None:
        await self._request("start_recording")

    async def stats(self) -> CallMediaStats:
        return ipc.stats_from_wire(await self._request("stats"))

    def on_worker_leg_state(self, participant_id: str, state: str) -> None:
        self._legs[participant_id] = state
        self._on_leg_state(participant_id, state)

    def on_worker_failure(self, detail: FailureDetail) -> None:
        self._on_failure(detail)

    def on_worker_notice(self, participant_id: str, notice: MediaNotice) -> None:
        if self._on_notice is not None:
            self._on_notice(participant_id, notice)

    def on_worker_lost(self) -> None:
        if self._lost or self._closed is not None:
            return
        self._lost = True
        log.warning("call=%s media worker %d died", self._call_id, self.worker.index)
        self._on_failure(FailureDetail.MEDIA_WORKER_LOST)

    async def aclose(self) -> list[FinalisedRecording]:
        if self._closed is not None:
            return await asyncio.shield(self._closed)
        self._closed = asyncio.get_running_loop().create_future()
        recordings: list[FinalisedRecording] = []
        try:
            if not self._lost:
                try:
                    wire = await self.worker.request("close_call", call_id=self._call_id)
                    recordings = [ipc.recording_from_wire(r) for r in wire]
                except MediaWorkerLost:
                    self._lost = True
                except Exception:
                    log.exception("call=%s closing its media on the worker failed", self._call_id)
            if self._lost:
                recordings = await asyncio.to_thread(
                    recover_call_recordings, self._staging / self._call_id
                )
        finally:
            self.worker.calls.pop(self._call_id, None)
            self._closed.set_result(recordings)
        return recordings


def recover_call_recordings(directory: Path) -> list[FinalisedRecording]:
    """Finalise from disk what a dead worker left of one call (marked interrupted)."""
    recovered: list[FinalisedRecording] = []
    for manifest in recoverable_manifests(directory):
        try:
            recovered.append(recover_recording(manifest))
        except Exception:
            log.exception("could not recover recording %s", manifest.name)
    return recovered


def split_port_range(port_range: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """``count`` contiguous, disjoint slices of ``low..high`` (inclusive), one per worker,
    the first ones one port larger when the range does not divide evenly.

    Each worker binds only in its own slice, so workers never race for a port, a worker
    can tell on its own that its slice is full, and a replacement worker (same index)
    finds the ports its dead predecessor held freed with its process.
    """
    low, high = port_range
    size = high - low + 1
    if count < 1 or size < count:
        raise ValueError(f"cannot split ports {low}-{high} between {count} workers")
    share, extra = divmod(size, count)
    slices = []
    start = low
    for index in range(count):
        end = start + share - 1 + (1 if index < extra else 0)
        slices.append((start, end))
        start = end + 1
    return slices


class MediaWorkerPool:
    def __init__(
        self,
        count: int,
        *,
        staging: Path,
        ice_host_addresses: list[str] | None,
        udp_receive_buffer_bytes: int,
        port_range: tuple[int, int] | None = None,
        announced_addresses: dict[str, str] | None = None,
        log_format: Literal["text", "json"] = "text",
        node_name: str = "",
        staging_space: StagingSpace | None = None,
        staging_budget_bytes: int | None = None,
        max_leg_bitrate_bps: int = DEFAULT_MAX_LEG_BITRATE_BPS,
        receiver_driven_bitrate: bool = True,
        max_calls_per_worker: int | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("a media worker pool needs at least one worker")
        self._max_calls_per_worker = max_calls_per_worker
        self._port_slices = split_port_range(port_range, count) if port_range else None
        self._announced_addresses = dict(announced_addresses or {})
        self._count = count
        self._staging = staging
        self._staging_space = staging_space
        self._staging_budget_bytes = staging_budget_bytes
        self._ice_host_addresses = ice_host_addresses
        self._udp_receive_buffer_bytes = udp_receive_buffer_bytes
        self._log_format: Literal["text", "json"] = log_format
        self._node_name = node_name
        self._max_leg_bitrate_bps = max_leg_bitrate_bps
        self._receiver_driven_bitrate = receiver_driven_bitrate
        self.workers: list[WorkerProcess | None] = [None] * count
        self._supervisors: list[asyncio.Task[None]] = []
        self._closing = False
        self._started = asyncio.Event()

    def _config(self, index: int) -> WorkerConfig:
        return WorkerConfig(
            index=index,
            staging_dir=str(self._staging),
            ice_host_addresses=self._ice_host_addresses,
            udp_receive_buffer_bytes=self._udp_receive_buffer_bytes,
            staging_budget_bytes=self._staging_budget_bytes,
            port_range=self._port_slices[index] if self._port_slices else None,
            announced_addresses=self._announced_addresses,
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            log_format=self._log_format,
            node_name=self._node_name,
            max_leg_bitrate_bps=self._max_leg_bitrate_bps,
            receiver_driven_bitrate=self._receiver_driven_bitrate,
        )

    async def start(self) -> None:
        """Start every worker and their supervisors; returns once each worker started once
        (or failed to)."""
        loop = asyncio.get_running_loop()
        first_starts = [loop.create_future() for _ in range(self._count)]
        for index in range(self._count):
            self._supervisors.append(
                loop.create_task(
                    self._supervise(index, first_starts[index]), name=f"media-worker-{index}"
                )
            )
        await asyncio.gather(*first_starts)

    async def _supervise(self, index: int, first_start: asyncio.Future[None]) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._closing:
            worker = WorkerProcess(index, self._config(index))
            self.workers[index] = worker
            started_at = loop.time()
            try:
                await worker.start()
            except Exception:
                log.exception("media worker %d failed to start", index)
            finally:
                if not first_start.done():
                    first_start.set_result(None)
            if worker.alive:
                await worker.wait_gone()
            if self._closing:
                return
            failures = 0 if loop.time() - started_at > STABLE_AFTER_S else failures + 1
            pause = RESTART_PAUSE_S[min(failures, len(RESTART_PAUSE_S) - 1)]
            log.warning("media worker %d is gone; starting a new one in %.1f s", index, pause)
            await asyncio.sleep(pause)

    def _live_workers(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w is not None and w.ready and w.alive]

    async def open_call(
        self,
        call_id: str,
        *,
        on_leg_state: LegStateListener,
        on_failure: MediaFailureListener,
        on_notice: MediaNoticeListener | None = None,
    ) -> RemoteCallMedia:
        if self._closing:
            raise MediaUnavailableError("the node is shutting down")
        live = self._live_workers()
        if not live:
            raise MediaUnavailableError("no media worker is running on this node")
        if self._staging_space is not None:
            # The workers record into the node's staging folder, on this file system.
            await self._staging_space.check()
        worker = min(live, key=lambda w: (len(w.calls), w.index))
        cap = self._max_calls_per_worker
        if cap is not None and len(worker.calls) >= cap:
            # Past what a worker carries, every call on it degrades at once (consent checks
            # time out and all its calls fail): refuse the new call instead.
            raise MediaUnavailableError(f"every media worker carries its maximum of {cap} calls")
        media = RemoteCallMedia(
            call_id, worker, self._staging, on_leg_state, on_failure, on_notice=on_notice
        )
        worker.calls[call_id] = media  # counted at once, so racing calls spread out
        try:
            await worker.request("open_call", call_id=call_id)
        except BaseException as exc:
            worker.calls.pop(call_id, None)
            if isinstance(exc, MediaWorkerLost):
                raise MediaUnavailableError(str(exc)) from None
            raise
        log.info("call=%s placed on media worker %d", call_id, worker.index)
        return media

    @property
    def ready(self) -> bool:
        return not self._closing and bool(self._live_workers())

    def status(self) -> dict[str, object]:
        return {
            "mode": "workers",
            "calls": sum(len(w.calls) for w in self.workers if w is not None),
            "workers": [_worker_status(index, w) for index, w in enumerate(self.workers)],
        }

    def worker_loads(self) -> list[WorkerLoad | None]:
        return [w.load if w is not None and w.alive else None for w in self.workers]

    def worker_pids(self) -> list[int | None]:
        return [w.pid if w is not None and w.alive else None for w in self.workers]

    async def aclose(self) -> None:
        self._closing = True
        workers = [w for w in self.workers if w is not None]
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)


def _worker_status(index: int, worker: WorkerProcess | None) -> dict[str, object]:
    """One worker's entry in ``/readyz`` (``MediaWorkerStatus``)."""
    if worker is None:
        return {"index": index, "pid": None, "ready": False, "calls": 0}
    return {
        "index": index,
        "pid": worker.pid,
        "ready": worker.ready and worker.alive,
        "calls": len(worker.calls),
        "cpu_seconds": worker.load.cpu_seconds,
        "loop_lag_p99_ms": 1000 * worker.load.loop_lag.get("p99", 0.0),
    }


def default_worker_count() -> int:
    return max(1, os.cpu_count() or 1)
