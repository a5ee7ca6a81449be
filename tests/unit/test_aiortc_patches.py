"""Guards for signaling/aiortc_patches.py: fail loudly when aiortc or aioice change.

Each patched or privately called function has its signature pinned here, and each line
of upstream code a patch depends on is looked for in the installed source. If one of
these fails after an upgrade, re-read the function named in the failure, adapt the patch
(or delete it if upstream fixed the problem) and update ``CHECKED_VERSIONS``.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import socket
import tomllib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import aioice
import aioice.ice
import aiortc
import av
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver, decoder_worker
from aiortc.rtcrtpsender import RTCRtpSender
from packaging.requirements import Requirement

from signaling import aiortc_patches
from signaling.media_errors import MediaNegotiationError

_original_get_component_candidates = (
    aiortc_patches._state.original_get_component_candidates
    or aioice.ice.Connection.get_component_candidates
)

PINNED_SIGNATURES: list[tuple[str, Callable[..., Any], str]] = [
    (
        "aioice.ice.Connection.data_received",
        aiortc_patches._state.original_data_received or aioice.ice.Connection.data_received,
        "(self, data: bytes, component: int) -> None",
    ),
    (
        "aioice.ice.get_host_addresses",
        aiortc_patches._state.original_get_host_addresses or aioice.ice.get_host_addresses,
        "(use_ipv4: bool, use_ipv6: bool) -> list[str]",
    ),
    (
        "aioice.ice.Connection.get_component_candidates",
        aiortc_patches._state.original_get_component_candidates
        or aioice.ice.Connection.get_component_candidates,
        "(self, component: int, addresses: list[str], timeout: int = 5) "
        "-> list[aioice.candidate.Candidate]",
    ),
    (
        "aiortc.rtcrtpreceiver.decoder_worker",
        decoder_worker,
        "(loop: asyncio.events.AbstractEventLoop, input_q: queue.Queue, "
        "output_q: asyncio.queues.Queue, decode_error: threading.Event) -> None",
    ),
    (
        "RTCRtpReceiver._handle_rtp_packet",
        RTCRtpReceiver._handle_rtp_packet,
        "(self, packet: aiortc.rtp.RtpPacket, arrival_time_ms: int) -> None",
    ),
    (
        "RTCRtpReceiver._send_rtcp_pli",
        RTCRtpReceiver._send_rtcp_pli,
        "(self, media_ssrc: int) -> None",
    ),
    ("RTCRtpSender._send_keyframe", RTCRtpSender._send_keyframe, "(self) -> None"),
    (
        "RTCRtpSender._next_encoded_frame",
        RTCRtpSender._next_encoded_frame,
        "(self, codec: aiortc.rtcrtpparameters.RTCRtpCodecParameters) "
        "-> Optional[aiortc.rtcrtpsender.RTCEncodedFrame]",
    ),
    (
        "Vp8Encoder._packetize",
        Vp8Encoder._packetize,
        "(buffer: bytes, picture_id: int) -> list[bytes]",
    ),
    (
        "H264Encoder._packetize",
        H264Encoder._packetize,
        "(packages: collections.abc.Iterable[bytes]) -> list[bytes]",
    ),
    (
        "H264Encoder._split_bitstream",
        H264Encoder._split_bitstream,
        "(buf: bytes) -> collections.abc.Iterator[bytes]",
    ),
]

# Upstream lines each patch relies on: (function, line, what depends on it).
UPSTREAM_LINES: list[tuple[Callable[..., Any], str, str]] = [
    (
        RTCRtpReceiver._handle_rtp_packet,
        "self.__decoder_queue.put((codec, encoded_frame))",
        "tap_receiver replaces the decoder queue and expects (codec, frame) on the loop",
    ),
    (
        RTCRtpReceiver.receive,
        "self.__decoder_queue,",
        "the decoder thread reads the (replaced) decoder queue",
    ),
    (
        decoder_worker,
        "task = input_q.get()",
        "the idle decoder thread blocks in the tap's get()",
    ),
    (
        RTCRtpSender._handle_rtcp_packet,
        "self._send_keyframe()",
        "PLI/FIR reach make_sender_passthrough's hook through _send_keyframe",
    ),
    (
        RTCRtpSender._next_encoded_frame,
        "if self.__encoder is None:",
        "make_sender_passthrough presets the encoder so get_encoder is never called",
    ),
    (
        RTCRtpSender._next_encoded_frame,
        "payloads, timestamp = self.__encoder.pack(data)",
        "packets go through PassthroughPacketizer.pack",
    ),
    (
        RTCDtlsTransport._recv_next,
        "first_byte = data[0]",
        "the empty-datagram bug: if this line is gone, check whether the patch can go",
    ),
    (
        aioice.ice.StunProtocol.datagram_received,
        "self.receiver.data_received(data, self.local_candidate.component)",
        "every non-STUN datagram goes through Connection.data_received",
    ),
    (
        aioice.ice.Connection.gather_candidates,
        "addresses = get_host_addresses(",
        "limit_ice_host_addresses works through the module-level get_host_addresses",
    ),
    (
        aioice.ice.Connection.gather_candidates,
        "self.get_component_candidates(component=component, addresses=addresses)",
        "the port range and announced addresses work through get_component_candidates",
    ),
    (
        _original_get_component_candidates,
        "lambda: StunProtocol(self), local_addr=(address, 0)",
        "the host part we replace: if aioice binds otherwise now, re-check the patch",
    ),
    (
        _original_get_component_candidates,
        "self._protocols += host_protocols",
        "host sockets live in Connection._protocols, which the patch appends to",
    ),
    (
        _original_get_component_candidates,
        "if self.turn_server:",
        "STUN/TURN gathering stays aioice's: the patch calls it with no host addresses",
    ),
]


def test_versions_are_the_checked_ones() -> None:
    found = {"aiortc": aiortc.__version__, "aioice": aioice.__version__}
    assert found == aiortc_patches.CHECKED_VERSIONS, (
        "aiortc/aioice changed: re-check every patch in signaling/aiortc_patches.py, "
        "then update CHECKED_VERSIONS"
    )


@pytest.mark.parametrize(("name", "function", "expected"), PINNED_SIGNATURES)
def test_patched_signatures_are_unchanged(
    name: str, function: Callable[..., Any], expected: str
) -> None:
    assert str(inspect.signature(function)) == expected, (
        f"{name} changed its signature: re-check signaling/aiortc_patches.py"
    )


@pytest.mark.parametrize(("function", "line", "why"), UPSTREAM_LINES)
def test_upstream_lines_the_patches_rely_on(
    function: Callable[..., Any], line: str, why: str
) -> None:
    assert line in inspect.getsource(function), f"{function.__qualname__}: {why}"


async def test_replaced_attributes_exist_on_fresh_transceivers() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video")
        receiver, sender = transceiver.receiver, transceiver.sender
        assert isinstance(
            getattr(receiver, aiortc_patches.RECEIVER_DECODER_QUEUE_ATTR), queue.Queue
        )
        assert getattr(receiver, aiortc_patches.RECEIVER_DECODER_THREAD_ATTR) is None
        assert getattr(sender, aiortc_patches.SENDER_ENCODER_ATTR) is None
        assert inspect.ismethod(sender._send_keyframe)

        frames: list[tuple[str, int, bytes, int]] = []
        aiortc_patches.tap_receiver(receiver, lambda *frame: frames.append(frame))
        codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
        tap = getattr(receiver, aiortc_patches.RECEIVER_DECODER_QUEUE_ATTR)
        tap.put((codec, JitterFrame(b"frame", 3000)))
        assert frames == [("VP8", 90000, b"frame", 3000)]
        tap.put(None)
        assert tap.get() is None  # the idle decoder thread's get() returns once stopped

        requests: list[None] = []
        aiortc_patches.make_sender_passthrough(
            sender, codec="VP8", clock_rate=90000, on_keyframe_request=lambda: requests.append(None)
        )
        sender._send_keyframe()
        assert requests == [None]
        with pytest.raises(RuntimeError):
            aiortc_patches.make_sender_passthrough(
                sender, codec="VP8", clock_rate=90000, on_keyframe_request=lambda: None
            )
    finally:
        await pc.close()


def _packet(data: bytes, pts: int, clock_rate: int) -> av.Packet[Any]:
    packet = av.Packet(data)
    packet.pts = pts
    packet.time_base = Fraction(1, clock_rate)
    return packet


def test_passthrough_packetizer_packs_without_encoding() -> None:
    vp8 = aiortc_patches.PassthroughPacketizer("VP8", 90000)
    frame = bytes(range(256)) * 12
    payloads, timestamp = vp8.pack(_packet(frame, 6000, 90000))
    assert timestamp == 6000
    assert len(payloads) == 3
    assert b"".join(vp8_depayload(p) for p in payloads) == frame

    h264 = aiortc_patches.PassthroughPacketizer("H264", 90000)
    annex_b = (
        b"\x00\x00\x00\x01\x67\x42"
        + b"\x00\x00\x00\x01\x68\xce"
        + b"\x00\x00\x00\x01\x65"
        + b"\x88" * 3000
    )
    payloads, timestamp = h264.pack(_packet(annex_b, 3000, 90000))
    assert timestamp == 3000
    assert payloads[0][0] & 0x1F == 24  # SPS and PPS aggregated (STAP-A)
    assert all(p[0] & 0x1F == 28 for p in payloads[1:])  # the IDR slice fragmented (FU-A)

    opus = aiortc_patches.PassthroughPacketizer("opus", 48000)
    assert opus.pack(_packet(b"\xfc\x01\x02", 960, 48000)) == ([b"\xfc\x01\x02"], 960)
    with pytest.raises(RuntimeError):
        opus.encode(object())


async def test_empty_datagrams_are_dropped_and_the_queue_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aiortc_patches.install_global_patches()
    monkeypatch.setattr(aiortc_patches, "MAX_PENDING_DATAGRAMS", 3)
    connection = aioice.ice.Connection(ice_controlling=True)
    before = aiortc_patches.datagram_drop_counts()
    connection.data_received(b"", 1)
    for n in range(5):
        connection.data_received(bytes([n + 1]), 1)
    after = aiortc_patches.datagram_drop_counts()
    assert connection._queue.qsize() == 3
    assert after.empty == before.empty + 1
    assert after.queue_full == before.queue_full + 2
    await connection.close()


def test_host_addresses_can_be_limited() -> None:
    aiortc_patches.limit_ice_host_addresses(["127.0.0.1", "::1"])
    try:
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    finally:
        aiortc_patches.limit_ice_host_addresses(None)
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)


def test_patches_install_once() -> None:
    aiortc_patches.install_global_patches()
    patched = aioice.ice.Connection.data_received
    aiortc_patches.install_global_patches()
    assert aioice.ice.Connection.data_received is patched
    assert asyncio.iscoroutinefunction(aiortc_patches.send_picture_loss_indication)


# ---- the version guard: `inboxcall serve` refuses versions the patches were not checked on


@pytest.mark.parametrize(
    "found",
    [
        {"aiortc": "1.16.0", "aioice": "0.13.0"},
        {"aiortc": "1.16.3", "aioice": "0.13.1"},  # patch releases: the compatible range
    ],
)
def test_guard_accepts_the_checked_compatible_releases(found: dict[str, str]) -> None:
    assert aiortc_patches.media_stack_problems(found) == []
    aiortc_patches.require_checked_versions(found)


@pytest.mark.parametrize(
    ("found", "refused"),
    [
        ({"aiortc": "1.17.0", "aioice": "0.13.0"}, ["aiortc"]),
        ({"aiortc": "1.15.9", "aioice": "0.13.0"}, ["aiortc"]),
        ({"aiortc": "2.0.0", "aioice": "0.14.0"}, ["aiortc", "aioice"]),
        ({"aiortc": "1.16.0", "aioice": "0.12.9"}, ["aioice"]),
        ({"aiortc": "1.16.1rc1", "aioice": "0.13.0"}, ["aiortc"]),  # pre-releases too
        ({"aiortc": "not-a-version", "aioice": "0.13.0"}, ["aiortc"]),
        ({"aiortc": "1.16.0"}, ["aioice"]),
    ],
)
def test_guard_refuses_any_other_version(found: dict[str, str], refused: list[str]) -> None:
    problems = aiortc_patches.media_stack_problems(found)
    assert [p.split(" ", 1)[0] for p in problems] == refused
    with pytest.raises(aiortc_patches.UnsupportedMediaStackError) as caught:
        aiortc_patches.require_checked_versions(found)
    message = str(caught.value)
    for package in refused:
        assert f"{package} {found.get(package, 'not installed')} is installed" in message
        assert f"checked on {package} {aiortc_patches.CHECKED_VERSIONS[package]}" in message
    assert "Moving to a new aiortc or aioice" in message


def test_pyproject_pins_the_guarded_ranges() -> None:
    """The install pins and the start-up guard name the same compatible releases."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    pins = {
        Requirement(spec).name: str(Requirement(spec).specifier)
        for spec in pyproject["project"]["dependencies"]
    }
    for package in aiortc_patches.CHECKED_VERSIONS:
        assert pins[package] == aiortc_patches.supported_specifier(package), package


# ---- media ports and announced addresses


async def _gathered(connection: aioice.ice.Connection) -> list[tuple[str, int, str]]:
    await connection.gather_candidates()
    return [(c.host, c.port, c.type) for c in connection.local_candidates]


async def test_host_candidates_bind_in_the_port_range_and_announce_the_public_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        low = probe.getsockname()[1]
    aiortc_patches.configure_media_sockets(
        ["127.0.0.1"],
        udp_receive_buffer_bytes=1 << 20,
        port_range=(low, low + 1),
        announced={"127.0.0.1": "203.0.113.7"},
    )
    connections = [aioice.ice.Connection(ice_controlling=False) for _ in range(3)]
    try:
        first = await _gathered(connections[0])
        second = await _gathered(connections[1])
        assert [c[0] for c in first + second] == ["203.0.113.7", "203.0.113.7"]
        assert {c[1] for c in first + second} == {low, low + 1}
        assert [c[2] for c in first + second] == ["host", "host"]
        # The socket really is bound on the local address, on the announced port.
        sockname = connections[0]._protocols[0].transport.get_extra_info("sockname")
        assert sockname == ("127.0.0.1", first[0][1])

        # Every port taken: the leg is refused in words, not answered without candidates.
        with pytest.raises(MediaNegotiationError) as refused:
            await connections[2].gather_candidates()
        assert refused.value.code == aiortc_patches.MEDIA_PORTS_EXHAUSTED
        assert f"({low}-{low + 1}) is in use" in refused.value.message
        assert refused.value.retryable

        # A closed leg gives its port back.
        await connections[0].close()
        again = aioice.ice.Connection(ice_controlling=False)
        connections.append(again)
        assert await _gathered(again) == [("203.0.113.7", first[0][1], "host")]
    finally:
        for connection in connections:
            await connection.close()
        aiortc_patches.reset_media_sockets()


async def test_without_range_or_announcement_aioice_gathers_as_before() -> None:
    aiortc_patches.limit_ice_host_addresses(["127.0.0.1"])
    connection = aioice.ice.Connection(ice_controlling=False)
    try:
        [(host, port, kind)] = await _gathered(connection)
        assert (host, kind) == ("127.0.0.1", "host") and port > 0
    finally:
        await connection.close()
        aiortc_patches.reset_media_sockets()


def test_announced_addresses_keep_their_ip_version() -> None:
    with pytest.raises(ValueError, match="same IP version"):
        aiortc_patches.announce_ice_addresses({"127.0.0.1": "2001:db8::1"})
    with pytest.raises(ValueError, match="port range"):
        aiortc_patches.use_media_ports((5000, 4000))
