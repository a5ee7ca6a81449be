"""Guards for signaling/aiortc_patches.py: fail loudly when aiortc or aioice change.

Each patched or privately called function has its signature pinned here, and each line
of upstream code a patch depends on is looked for in the installed source. If one of
these fails after an upgrade, re-read the function named in the failure, adapt the patch
(or delete it if upstream fixed the problem) and update ``CHECKED_VERSIONS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import socket
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import aioice
import aioice.ice
import aioice.stun
import aiortc
import av
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver, decoder_worker
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket
from packaging.requirements import Requirement

from signaling import aiortc_patches
from signaling.media_errors import MediaNegotiationError

_original_get_component_candidates = (
    aiortc_patches._state.original_get_component_candidates
    or aioice.ice.Connection.get_component_candidates
)


def _original(keep: str, current: Callable[..., Any]) -> Callable[..., Any]:
    """aioice's own function, even once the patches are installed."""
    original = getattr(aiortc_patches._state, keep)
    return original if original is not None else current


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
        "aioice.ice.StunProtocol.datagram_received",
        aiortc_patches._state.original_datagram_received
        or aioice.ice.StunProtocol.datagram_received,
        "(self, data: bytes | str, addr: tuple[typing.Any, ...]) -> None",
    ),
    (
        "aioice.ice.Connection.add_remote_candidate",
        aiortc_patches._state.original_add_remote_candidate
        or aioice.ice.Connection.add_remote_candidate,
        "(self, remote_candidate: aioice.candidate.Candidate | None) -> None",
    ),
    (
        "aioice.ice.Connection._pair_remote_candidate",
        aiortc_patches._state.original_pair_remote_candidate
        or aioice.ice.Connection._pair_remote_candidate,
        "(self, remote_candidate: aioice.candidate.Candidate) -> None",
    ),
    (
        "aioice.ice.Connection.request_received",
        aiortc_patches._state.original_request_received or aioice.ice.Connection.request_received,
        "(self, message: aioice.stun.Message, addr: tuple[str, int], "
        "protocol: aioice.ice.StunProtocol) -> None",
    ),
    (
        "aioice.ice.Connection.check_incoming",
        aiortc_patches._state.original_check_incoming or aioice.ice.Connection.check_incoming,
        "(self, message: aioice.stun.Message, addr: tuple[str, int], "
        "protocol: aioice.ice.StunProtocol) -> None",
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
        "RemoteBitrateEstimator.add",
        RemoteBitrateEstimator.add,
        "(self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int) "
        "-> Optional[tuple[int, list[int]]]",
    ),
    (
        "RTCRtpSender._handle_rtcp_packet",
        RTCRtpSender._handle_rtcp_packet,
        "(self, packet: Union[aiortc.rtp.RtcpByePacket, aiortc.rtp.RtcpPsfbPacket, "
        "aiortc.rtp.RtcpRrPacket, aiortc.rtp.RtcpRtpfbPacket, aiortc.rtp.RtcpSdesPacket, "
        "aiortc.rtp.RtcpSrPacket]) -> None",
    ),
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
        "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)",
        "bound_video_wait replaces the jitter buffer and relies on its PLI flag being sent",
    ),
    (
        JitterBuffer._remove_frame,
        "if packet is None:",
        "BoundedWaitJitterBuffer: aiortc's buffer stops at the first missing packet",
    ),
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
        RTCDtlsTransport._handle_rtcp_data,
        "await recipient._handle_rtcp_packet(packet)",
        "observe_receiver_reports shadows the sender's _handle_rtcp_packet on the instance",
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
        RTCRtpSender._handle_rtcp_packet,
        "self.__encoder.target_bitrate = bitrate",
        "the receiving browser's REMB reaches PassthroughPacketizer.target_bitrate",
    ),
    (
        RTCRtpSender._handle_rtcp_packet,
        "await self._retransmit(seq)",
        "NACKs on the receiving hop are answered by the sender itself",
    ),
    (
        RTCRtpSender._run_rtp,
        "self.__rtp_history[packet.sequence_number % RTP_HISTORY_SIZE] = (",
        "the sender keeps what it packetized (forwarded frames too) for retransmission",
    ),
    (
        RTCRtpReceiver.__init__,
        "self.__remote_bitrate_estimator = RemoteBitrateEstimator()",
        "cap_receive_estimate replaces the video receiver's estimator object",
    ),
    (
        RTCRtpReceiver._handle_rtp_packet,
        "remb = self.__remote_bitrate_estimator.add(",
        "the REMB the receiver sends is whatever the (capped) estimator's add returns",
    ),
    (
        RTCRtpReceiver._handle_rtp_packet,
        "fci=pack_remb_fci(*remb),",
        "add returns (bitrate, ssrcs), packed as the REMB as is",
    ),
    (
        RemoteBitrateEstimator.add,
        "return target_bitrate, list(self.ssrcs.keys())",
        "CappedBitrateEstimator reads the wrapped estimate and its ssrcs",
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
    # Bounded ICE.
    (
        _original("original_add_remote_candidate", aioice.ice.Connection.add_remote_candidate),
        "if mdns.is_mdns_hostname(remote_candidate.host):",
        "mDNS candidates are resolved here: the patch must run before this",
    ),
    (
        aioice.ice.Connection._add_remote_candidate,
        "self._pair_remote_candidate(remote_candidate)",
        "a trickled candidate is paired (so checked) only through _pair_remote_candidate",
    ),
    (
        aioice.ice.Connection.connect,
        "self._pair_remote_candidate(remote_candidate)",
        "connect() pairs the offer's candidates through _pair_remote_candidate",
    ),
    (
        aioice.ice.Connection.connect,
        "self.check_incoming(*early_check)",
        "checks held back until connect() go through check_incoming (the cap applies there)",
    ),
    (
        _original("original_check_incoming", aioice.ice.Connection.check_incoming),
        'type="prflx",',
        "peer-reflexive candidates are learned here and counted by their type",
    ),
    (
        _original("original_check_incoming", aioice.ice.Connection.check_incoming),
        "if c._network_host == addr[0] and c.port == addr[1]:",
        "a known remote candidate is matched by _network_host and port, as _known_remote does",
    ),
    (
        _original("original_request_received", aioice.ice.Connection.request_received),
        "self._early_checks.append((message, addr, protocol))",
        "request_received answers, then hands the check on: the patch decides before both",
    ),
    (
        _original("original_datagram_received", aioice.ice.StunProtocol.datagram_received),
        "message = stun.parse_message(data)",
        "every datagram is tried as STUN first; the patch skips that for non-STUN first bytes",
    ),
    (
        aioice.ice.Connection.check_complete,
        "self._nominated[pair.component] = pair",
        "the source check reads the nominated pair per component from _nominated",
    ),
    (
        _original_get_component_candidates,
        'type="host",',
        "the scope of our own addresses is read from the host candidates of _protocols",
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


async def test_receiver_estimates_reach_the_bridge_and_the_remb_it_sends_is_capped() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video")
        estimates: list[int] = []
        aiortc_patches.make_sender_passthrough(
            transceiver.sender,
            codec="VP8",
            clock_rate=90000,
            on_keyframe_request=lambda: None,
            on_receiver_estimate=estimates.append,
        )
        encoder = getattr(transceiver.sender, aiortc_patches.SENDER_ENCODER_ATTR)
        encoder.target_bitrate = 300_000  # what aiortc's sender does with a REMB
        assert estimates == [300_000] and encoder.target_bitrate == 300_000

        receiver = transceiver.receiver
        assert isinstance(
            getattr(receiver, aiortc_patches.RECEIVER_BITRATE_ESTIMATOR_ATTR),
            RemoteBitrateEstimator,
        )
        cap: list[int | None] = [None]
        capped = aiortc_patches.cap_receive_estimate(receiver, lambda: cap[0])
        assert getattr(receiver, aiortc_patches.RECEIVER_BITRATE_ESTIMATOR_ATTR) is capped
        audio = pc.addTransceiver("audio").receiver
        with pytest.raises(RuntimeError, match="audio receivers have none"):
            aiortc_patches.cap_receive_estimate(audio, lambda: None)
    finally:
        await pc.close()


class _Estimator:
    """A ``RemoteBitrateEstimator`` stand-in that reports what it is told to."""

    def __init__(self) -> None:
        self.ssrcs: dict[int, int] = {}
        self.next: int | None = None

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        self.ssrcs[ssrc] = arrival_time_ms
        report, self.next = self.next, None
        return None if report is None else (report, list(self.ssrcs))


def test_capped_estimator_reports_the_lower_of_its_estimate_and_the_cap() -> None:
    inner = _Estimator()
    cap: list[int | None] = [None]
    capped = aiortc_patches.CappedBitrateEstimator(inner, lambda: cap[0])

    def add(now_ms: int) -> tuple[int, list[int]] | None:
        return capped.add(arrival_time_ms=now_ms, abs_send_time=0, payload_size=1000, ssrc=7)

    assert add(0) is None  # nothing known yet
    inner.next = 900_000
    assert add(10) == (900_000, [7])
    cap[0] = 300_000
    assert add(20) is None  # rate-limited: 200 ms between extra reports
    assert add(210) == (300_000, [7])  # a falling cap is told at once
    assert add(500) is None  # unchanged
    inner.next = 1_000_000
    assert add(600) == (300_000, [7])  # the estimator's own report, capped
    assert capped.own_estimate == 1_000_000 and capped.reported == 300_000
    cap[0] = 320_000
    assert add(900) is None  # a change under 10 % is not worth a REMB
    cap[0] = None
    assert add(1200) == (1_000_000, [7])  # the cap lifted: back to the own estimate


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


def test_the_ice_scope_rules() -> None:
    """DESIGN.md section 8, ICE scope: public always; loopback, private and link-local only
    when one of our own host addresses is in the same scope; never the unusable ones."""
    allowed = aiortc_patches.ice_address_allowed
    assert allowed("8.8.8.8", ["127.0.0.1"]) is True
    # Documentation ranges stand in for public addresses (an announced 203.0.113.7).
    assert allowed("203.0.113.7", ["127.0.0.1"]) is True
    assert allowed("2001:db8::7", ["127.0.0.1"]) is True
    assert allowed("2001:4860:4860::8888", ["127.0.0.1"]) is True
    assert allowed("127.0.0.1", ["127.0.0.1"]) is True
    assert allowed("::1", ["127.0.0.1"]) is True  # both loopback
    assert allowed("10.0.0.7", ["127.0.0.1"]) is False
    assert allowed("192.168.1.9", []) is False
    assert allowed("10.0.0.7", ["127.0.0.1", "192.168.1.5"]) is True  # a single-LAN node
    assert allowed("100.64.1.1", ["10.0.0.2"]) is True  # shared address space: private
    assert allowed("100.64.1.1", ["127.0.0.1"]) is False
    assert allowed("169.254.1.1", ["10.0.0.2"]) is False
    assert allowed("169.254.1.1", ["169.254.9.9"]) is True
    assert allowed("fe80::1", ["127.0.0.1"]) is False
    assert allowed("fd00::7", ["10.0.0.2"]) is True  # unique local: private
    assert allowed("::ffff:10.0.0.7", ["10.0.0.2"]) is True  # IPv4-mapped
    for never in ("0.0.0.0", "0.1.2.3", "224.0.0.251", "255.255.255.255", "240.0.0.1", "ff02::1"):
        assert allowed(never, ["127.0.0.1", "10.0.0.2", "0.0.0.0", "224.0.0.1"]) is False, never
    assert allowed("x.local", ["127.0.0.1"]) is False


@pytest.fixture
async def connection() -> AsyncIterator[aioice.ice.Connection]:
    """A real aioice connection (the server's side of a leg) gathered on loopback."""
    aiortc_patches.limit_ice_host_addresses(["127.0.0.1"])
    connection = aioice.ice.Connection(ice_controlling=False)
    try:
        await connection.gather_candidates()
        connection.remote_username = "remote"
        connection.remote_password = "r" * 22
        yield connection
    finally:
        await connection.close()
        aiortc_patches.limit_ice_host_addresses(None)


def _port(connection: aioice.ice.Connection) -> int:
    (candidate,) = connection.local_candidates
    return int(candidate.port)


@contextlib.contextmanager
def _clients(count: int) -> Iterator[list[socket.socket]]:
    sockets = []
    try:
        for _ in range(count):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            udp.setblocking(False)
            sockets.append(udp)
        yield sockets
    finally:
        for udp in sockets:
            udp.close()


def _check(connection: aioice.ice.Connection) -> bytes:
    request = aioice.stun.Message(
        message_method=aioice.stun.Method.BINDING, message_class=aioice.stun.Class.REQUEST
    )
    request.attributes["USERNAME"] = f"{connection.local_username}:remote"
    request.attributes["PRIORITY"] = 100
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(connection.local_password.encode())
    return bytes(request)


def _responses(udp: socket.socket) -> int:
    count = 0
    while True:
        try:
            message = aioice.stun.parse_message(udp.recv(2048))
        except BlockingIOError:
            return count
        count += message.message_class == aioice.stun.Class.RESPONSE


async def _until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_media_datagrams_only_from_candidate_pairs_reach_the_queue(
    connection: aioice.ice.Connection,
) -> None:
    aiortc_patches.install_global_patches()
    (protocol,) = connection._protocols
    before = aiortc_patches.datagram_drop_counts()
    rtp = b"\x80\x60" + b"\x00" * 100
    with _clients(2) as (stranger, peer):
        host, port = peer.getsockname()
        remote = aioice.Candidate(
            foundation="2", component=1, transport="udp", priority=1, host=host, port=port,
            type="host",
        )  # fmt: skip
        pair = aioice.ice.CandidatePair(protocol, remote)
        connection._check_list.append(pair)
        target = ("127.0.0.1", _port(connection))
        stranger.sendto(rtp, target)  # no pair: junk
        peer.sendto(rtp, target)  # a pair being checked: DTLS may already come from it
        await _until(lambda: connection._queue.qsize() == 1)
        await _until(
            lambda: (
                aiortc_patches.datagram_drop_counts().unknown_source == before.unknown_source + 1
            )
        )
        pair.state = aioice.ice.CandidatePair.State.FAILED
        peer.sendto(rtp, target)  # a failed pair: junk again
        await _until(
            lambda: (
                aiortc_patches.datagram_drop_counts().unknown_source == before.unknown_source + 2
            )
        )
        connection._nominated[1] = aioice.ice.CandidatePair(protocol, remote)
        peer.sendto(rtp, target)  # the nominated pair: media
        await _until(lambda: connection._queue.qsize() == 2)
    assert aiortc_patches.datagram_drop_counts().unknown_source == before.unknown_source + 2


async def test_peer_reflexive_candidates_are_capped_and_out_of_scope_checks_unanswered(
    connection: aioice.ice.Connection,
) -> None:
    aiortc_patches.install_global_patches()
    connection._early_checks_done = True  # as after connect()
    cap = aiortc_patches.MAX_PEER_REFLEXIVE_CANDIDATES
    before = aiortc_patches.ice_refusal_counts()
    target = ("127.0.0.1", _port(connection))
    with _clients(3 * cap) as clients:
        for udp in clients:
            udp.sendto(_check(connection), target)
        await _until(
            lambda: (
                aiortc_patches.ice_refusal_counts().peer_reflexive_over_cap
                == before.peer_reflexive_over_cap + 2 * cap
            )
        )
        learned = [c for c in connection._remote_candidates if c.type == "prflx"]
        assert len(learned) == cap
        assert len(connection._check_list) == cap
        answered = [udp for udp in clients if _responses(udp)]
        assert answered == clients[:cap]
        # A known source is still answered past the cap (consent checks, retransmissions).
        clients[0].sendto(_check(connection), target)
        await _until(lambda: _responses(clients[0]) == 1)
    after = aiortc_patches.ice_refusal_counts()
    assert after.peer_reflexive_over_cap == before.peer_reflexive_over_cap + 2 * cap
    assert after.checks_out_of_scope == before.checks_out_of_scope


async def test_a_check_over_loopback_from_this_hosts_own_address_is_answered(
    connection: aioice.ice.Connection,
) -> None:
    """Chromium on the same machine checks our 127.0.0.1 port from its interface address:
    what reaches a loopback socket comes from this host, so its path is loopback."""
    private = _machine_private_address()
    if private is None:
        pytest.skip("this machine has no private address to send from")
    aiortc_patches.install_global_patches()
    connection._early_checks_done = True
    before = aiortc_patches.ice_refusal_counts()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((private, 0))
        udp.setblocking(False)
        udp.sendto(_check(connection), ("127.0.0.1", _port(connection)))
        await _until(lambda: _responses(udp) == 1)
    assert aiortc_patches.ice_refusal_counts().checks_out_of_scope == before.checks_out_of_scope
    assert [c.host for c in connection._remote_candidates] == [private]


def _machine_private_address() -> str | None:
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(("192.0.2.254", 9))  # sends nothing: picks the route's source address
        address = str(udp.getsockname()[0])
        if aiortc_patches.address_scope(address) == "private":
            return address
    return None


async def test_checks_from_outside_the_scope_of_a_private_host_address_are_unanswered() -> None:
    """A media node on a private address answers its LAN, not loopback or link-local."""
    private = _machine_private_address()
    if private is None:
        pytest.skip("this machine has no private address to bind")
    aiortc_patches.install_global_patches()
    aiortc_patches.limit_ice_host_addresses([private])
    connection = aioice.ice.Connection(ice_controlling=False)
    try:
        await connection.gather_candidates()
        connection.remote_username, connection.remote_password = "remote", "r" * 22
        connection._early_checks_done = True
        before = aiortc_patches.ice_refusal_counts()
        target = (private, _port(connection))
        with contextlib.ExitStack() as stack:
            local = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            lan = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            local.bind(("127.0.0.1", 0))
            lan.bind((private, 0))
            for udp in (local, lan):
                udp.setblocking(False)
                udp.sendto(_check(connection), target)
            await _until(lambda: _responses(lan) == 1)
            await _until(
                lambda: (
                    aiortc_patches.ice_refusal_counts().checks_out_of_scope
                    == before.checks_out_of_scope + 1
                )
            )
            assert _responses(local) == 0
        (protocol,) = connection._protocols
        request = aioice.stun.parse_message(_check(connection))
        connection.request_received(request, ("169.254.7.7", 5000), protocol)
        assert aiortc_patches.ice_refusal_counts().checks_out_of_scope == (
            before.checks_out_of_scope + 2
        )
        assert {c.host for c in connection._remote_candidates} == {private}
    finally:
        await connection.close()
        aiortc_patches.limit_ice_host_addresses(None)


async def test_remote_candidates_mdns_and_scope(connection: aioice.ice.Connection) -> None:
    aiortc_patches.install_global_patches()
    before = aiortc_patches.ice_refusal_counts()

    def candidate(host: str, port: int) -> aioice.Candidate:
        return aioice.Candidate(
            foundation="3", component=1, transport="udp", priority=1, host=host, port=port,
            type="host",
        )  # fmt: skip

    await connection.add_remote_candidate(candidate("abc-123.local", 9))
    await connection.add_remote_candidate(candidate("10.9.9.9", 9))
    for port in range(2 * aiortc_patches.MAX_REMOTE_CANDIDATES):
        await connection.add_remote_candidate(candidate("127.0.0.1", 20000 + port))
    assert len(connection._remote_candidates) == aiortc_patches.MAX_REMOTE_CANDIDATES
    assert {p.remote_addr[0] for p in connection._check_list} == {"127.0.0.1"}
    after = aiortc_patches.ice_refusal_counts()
    assert after.mdns_candidates == before.mdns_candidates + 1
    assert after.candidates_out_of_scope == before.candidates_out_of_scope + 1
    assert after.candidates_over_cap == before.candidates_over_cap + (
        aiortc_patches.MAX_REMOTE_CANDIDATES + 1
    )


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
    patched = [getattr(owner, name) for owner, name, *_ in aiortc_patches._GLOBAL_PATCHES]
    aiortc_patches.install_global_patches()
    assert [getattr(o, n) for o, n, *_ in aiortc_patches._GLOBAL_PATCHES] == patched
    assert patched == [new for _owner, _name, new, _keep in aiortc_patches._GLOBAL_PATCHES]
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


async def test_video_receivers_get_the_bounded_wait_jitter_buffer() -> None:
    pc = RTCPeerConnection()
    try:
        video = pc.addTransceiver("video").receiver
        gaps: list[None] = []
        buffer = aiortc_patches.bound_video_wait(video, lambda: gaps.append(None), 0.25)
        assert getattr(video, aiortc_patches.RECEIVER_JITTER_BUFFER_ATTR) is buffer
        assert buffer.capacity == 512
        audio = pc.addTransceiver("audio").receiver
        with pytest.raises(RuntimeError, match="no video"):
            aiortc_patches.bound_video_wait(audio, lambda: None)
    finally:
        await pc.close()


def test_round_trip_time_is_computed_as_rfc_3550_says() -> None:
    # The report refers to a sender report sent 2.5 s before "now" (NTP middle 32 bits)
    # and was held 0.5 s at the receiver: the round trip is 2 s, which aiortc's own
    # estimate never sees once it outgrows the sender-report interval.
    now = (1_000_000 << 32) + (1 << 31)  # NTP seconds 1,000,000.5
    lsr = (((now >> 16) & 0xFFFFFFFF) - int(2.5 * 65536)) & 0xFFFFFFFF
    report = RtcpReceiverInfo(
        ssrc=1, fraction_lost=0, packets_lost=0, highest_sequence=0, jitter=0,
        lsr=lsr, dlsr=int(0.5 * 65536),
    )  # fmt: skip
    assert aiortc_patches.round_trip_time(report, now) == pytest.approx(2.0)
    no_sender_report = RtcpReceiverInfo(
        ssrc=1, fraction_lost=0, packets_lost=0, highest_sequence=0, jitter=0, lsr=0, dlsr=0
    )
    assert aiortc_patches.round_trip_time(no_sender_report, now) is None


async def test_receiver_reports_about_the_sender_reach_the_observer_and_aiortc() -> None:
    pc = RTCPeerConnection()
    try:
        sender = pc.addTransceiver("video").sender
        heard: list[tuple[int, int, float | None]] = []
        aiortc_patches.observe_receiver_reports(sender, lambda *report: heard.append(report))
        ours = RtcpReceiverInfo(
            ssrc=sender._ssrc, fraction_lost=64, packets_lost=7, highest_sequence=1234,
            jitter=0, lsr=0, dlsr=0,
        )  # fmt: skip
        other = RtcpReceiverInfo(
            ssrc=sender._ssrc + 1, fraction_lost=0, packets_lost=0, highest_sequence=1,
            jitter=0, lsr=0, dlsr=0,
        )  # fmt: skip
        await sender._handle_rtcp_packet(RtcpRrPacket(ssrc=99, reports=[ours, other]))
        assert heard == [(7, 1234, None)]
        # aiortc still handled it: its stats hold the report.
        stats = [s for s in (await sender.getStats()).values() if s.type == "remote-inbound-rtp"]
        assert [s.packetsLost for s in stats] == [7]
    finally:
        await pc.close()
