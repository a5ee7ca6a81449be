"""A browser's part in a call, in process: a signalling socket plus an aiortc media peer.

The media peer is ``tests.support.media_peers.MediaClient``: it sends a pre-encoded clip
and receives through the encoded-frame tap, so neither side encodes or decodes and the
codec spy below can demand zero codecs for the whole process while calls run.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiortc.codecs
import aiortc.codecs.h264
import aiortc.codecs.opus
import aiortc.codecs.vpx
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.appkeys import CALLS, DB
from server.calls.service import CallService
from server.db.models import Call, Message
from server.db.models import CallEvent as CallEventRow
from server.media.local_host import LocalCallMedia
from tests.support.encoded_media import EncodedClip
from tests.support.media_peers import MediaClient, Progress
from tests.support.service import Host
from tests.support.ws_client import WsClient


class Participant:
    """One person in a call: their socket, and the media peers they opened (newest last)."""

    def __init__(self, ws: WsClient, clip: EncodedClip, progress: Progress) -> None:
        self.ws = ws
        self.clip = clip
        self.progress = progress
        self.peers: list[MediaClient] = []

    @property
    def media(self) -> MediaClient:
        return self.peers[-1]

    async def connect_media(self, call_id: str, **media_kwargs: Any) -> MediaClient:
        """Offer a fresh peer connection over the socket, apply the answer, end candidates."""
        peer = MediaClient(self.clip, self.progress, **media_kwargs)
        self.peers.append(peer)
        answer = await self.ws.ok("offer", call_id=call_id, sdp=await peer.create_offer())
        assert answer["type"] == "answer"
        await peer.accept_answer(answer["sdp"])
        # aiortc puts every candidate in the offer; say so as a browser would.
        await self.ws.ok("ice_candidate", call_id=call_id, candidate=None)
        return peer

    async def close(self) -> None:
        for peer in self.peers:
            await peer.close()
        await self.ws.close()


def _on_recorder_thread() -> bool:
    # The recorder's worker thread opens two codec contexts of its own, off the media path:
    # the cached black keyframe it writes at camera-off, and an Opus context whose only use
    # is the stream header PyAV cannot write otherwise. Neither touches a relayed frame.
    return threading.current_thread().name.startswith("recorder-")


class CodecSpy:
    """Counts every encoder, decoder and codec context aiortc or PyAV construct on the
    forwarding path (everything but the recorder's worker thread)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        spy = self

        def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if not _on_recorder_thread():
                    spy.calls[name] += 1
                return original(*args, **kwargs)

            return wrapper

        monkeypatch.setattr(
            aiortc.rtcrtpsender,
            "get_encoder",
            counting("get_encoder", aiortc.rtcrtpsender.get_encoder),
        )
        monkeypatch.setattr(
            aiortc.rtcrtpreceiver,
            "get_decoder",
            counting("get_decoder", aiortc.rtcrtpreceiver.get_decoder),
        )
        for module, name in (
            (aiortc.codecs.vpx, "Vp8Encoder"),
            (aiortc.codecs.vpx, "Vp8Decoder"),
            (aiortc.codecs.h264, "H264Encoder"),
            (aiortc.codecs.h264, "H264Decoder"),
            (aiortc.codecs.opus, "OpusEncoder"),
            (aiortc.codecs.opus, "OpusDecoder"),
        ):
            cls = getattr(module, name)
            monkeypatch.setattr(cls, "__init__", counting(name, cls.__init__))

        class SpyCodecContext:
            @staticmethod
            def create(*args: Any, **kwargs: Any) -> Any:
                if not _on_recorder_thread():
                    spy.calls["CodecContext.create"] += 1
                return av.codec.context.CodecContext.create(*args, **kwargs)

        for module in (av, aiortc.codecs.vpx, aiortc.codecs.opus):
            monkeypatch.setattr(module, "CodecContext", SpyCodecContext)

    def prove_it_can_fail(self) -> None:
        """A stock sender path builds an Opus encoder and its context: the spy must see it."""
        before = Counter(self.calls)
        opus = aiortc.codecs.CODECS["audio"][0]
        aiortc.rtcrtpsender.get_encoder(opus)
        assert self.calls["get_encoder"] == before["get_encoder"] + 1
        assert self.calls["OpusEncoder"] == before["OpusEncoder"] + 1
        assert self.calls["CodecContext.create"] == before["CodecContext.create"] + 1


def assert_in_order_slice(received: list[bytes], sent: list[bytes]) -> None:
    """``received`` is a contiguous run of ``sent``, in order, nothing lost or repeated."""
    assert received, "nothing received"
    starts = [i for i, data in enumerate(sent) if data == received[0]]
    assert any(sent[i : i + len(received)] == received for i in starts), (
        "received frames are not a contiguous, in-order run of the sent frames"
    )


def assert_in_order_subsequence(received: list[bytes], sent: list[bytes]) -> None:
    """``received`` appears in ``sent`` in order (gaps allowed: frames held back)."""
    assert received, "nothing received"
    position = 0
    for index, data in enumerate(received):
        try:
            position = sent.index(data, position) + 1
        except ValueError:
            raise AssertionError(
                f"received frame {index} is not in the sent frames after the previous one"
            ) from None


SignedIn = Callable[[str], Awaitable[tuple[TestClient[Any, Any], str]]]


class CallHarness:
    """Sellers and buyers with sockets and media peers against the real server."""

    def __init__(
        self, server: TestServer, host: Host, signed_in: SignedIn, clip: EncodedClip
    ) -> None:
        self.server = server
        self.host = host
        self.signed_in = signed_in
        self.clip = clip
        self.progress = Progress()
        self.clients: dict[str, TestClient[Any, Any]] = {}
        self.csrf: dict[str, str] = {}
        self.participants: list[Participant] = []
        self.sockets: list[WsClient] = []

    def watch_transitions(self) -> None:
        """Wake waiters on every stored transition of any call (server-side changes)."""
        self.service.transition_listeners.append(lambda _live, _t: self.progress.notify())

    @property
    def app(self) -> web.Application:
        return self.server.app

    @property
    def service(self) -> CallService:
        return self.app[CALLS]

    def db(self) -> AsyncSession:
        return self.app[DB]()

    async def recording_video_of_both(self, call_id: str, timeout: float = 15) -> None:
        """Until the call's recorder has written video of both participants (recording
        starts when the call becomes active, on the keyframe it asks both for). Polled: the
        recorder's thread announces nothing to the loop."""
        media = self.local_media(call_id)
        live = self.service.live_call(call_id)
        assert live is not None
        ids = [p.user_id for p in live.state.participants]
        async with asyncio.timeout(timeout):
            while True:
                stats = (await media.stats()).recorder
                if stats is not None and all(
                    stats.participants.get(i) is not None
                    and stats.participants[i].video_frames_written > 0
                    for i in ids
                ):
                    return
                await asyncio.sleep(0.05)

    def local_media(self, call_id: str) -> LocalCallMedia:
        """The in-process media of a live call (these tests run with media workers off)."""
        live = self.service.live_call(call_id)
        assert live is not None, f"call {call_id} is not live"
        assert isinstance(live.media, LocalCallMedia), "media runs in a worker process"
        return live.media

    async def client(self, user_id: str) -> TestClient[Any, Any]:
        if user_id not in self.clients:
            self.clients[user_id], self.csrf[user_id] = await self.signed_in(user_id)
        return self.clients[user_id]

    async def socket(self, user_id: str) -> WsClient:
        ws = await WsClient.connect(await self.client(user_id))
        self.sockets.append(ws)
        return ws

    async def participant(self, user_id: str) -> Participant:
        p = Participant(await self.socket(user_id), self.clip, self.progress)
        self.participants.append(p)
        return p

    async def ring(self, seller: Participant, buyer: Participant, thread_id: str) -> str:
        started = await seller.ws.ok(
            "start_call", thread_id=thread_id, recording_notice_accepted=True
        )
        assert started["type"] == "call_started"
        call_id = str(started["call_id"])
        await buyer.ws.wait_for("incoming_call", lambda m: m["call_id"] == call_id)
        return call_id

    async def connected_call(
        self, suffix: str = "", *, seller_name: str | None = None, buyer_name: str | None = None
    ) -> tuple[str, Participant, Participant]:
        """A fresh eligible pair in an active call with media flowing both ways."""
        seller_id, buyer_id, thread_id = await self.host.eligible_pair(
            suffix, seller_name=seller_name, buyer_name=buyer_name
        )
        seller = await self.participant(seller_id)
        buyer = await self.participant(buyer_id)
        call_id = await self.ring(seller, buyer, thread_id)
        await seller.connect_media(call_id)
        await buyer.ws.ok("accept_call", call_id=call_id, recording_notice_accepted=True)
        await buyer.connect_media(call_id)
        for p in (seller, buyer):
            await p.ws.call_state("active", timeout=15)
        await self.progress.wait_for(
            lambda: (
                len(seller.media.received["video"]) >= 3 and len(buyer.media.received["video"]) >= 3
            ),
            "video both ways",
        )
        return call_id, seller, buyer

    async def call_row(self, call_id: str) -> Call:
        async with self.db() as session:
            row = await session.get(Call, call_id)
        assert row is not None
        return row

    async def events(self, call_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
        async with self.db() as session:
            rows = (
                await session.scalars(
                    select(CallEventRow)
                    .where(CallEventRow.call_id == call_id)
                    .order_by(CallEventRow.id)
                )
            ).all()
        return [(r.kind, r.user_id, dict(r.data)) for r in rows]

    async def system_messages(self, thread_id: str) -> list[str]:
        async with self.db() as session:
            rows = (
                await session.scalars(
                    select(Message)
                    .where(Message.thread_id == thread_id, Message.kind == "system")
                    .order_by(Message.created_at)
                )
            ).all()
        return [r.text for r in rows]

    async def ended(self, call_id: str, *sockets: WsClient, timeout: float = 10) -> Call:
        """Both sockets hear the end; the teardown finishes; answer the stored row."""
        for ws in sockets:
            await ws.call_state("ended", timeout=timeout)
        await asyncio.wait_for(self.service.settled(), timeout)
        assert call_id not in self.service.live_call_ids
        row = await self.call_row(call_id)
        assert row.state == "ended"
        return row

    async def close(self) -> None:
        for p in self.participants:
            await p.close()
        for ws in self.sockets:
            await ws.close()
