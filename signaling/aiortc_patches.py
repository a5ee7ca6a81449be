"""Every patch of aiortc and aioice internals the media bridge relies on, in one place.

Checked against aiortc 1.16.0 and aioice 0.13.0 (``CHECKED_VERSIONS``). The unit test
``tests/unit/test_aiortc_patches.py`` pins the signature of every function we patch or
call and the attributes we replace, so an upgrade fails loudly there instead of quietly
decoding, encoding or dropping calls in production. When upgrading: re-read the named
functions, update the checked versions, and delete what upstream has fixed.

Why each patch exists, and when it can go:

* ``tap_receiver`` (per receiver): aiortc has no public API for the encoded frames of a
  remote track; its receiver hands every reassembled frame to a decoder thread through
  ``RTCRtpReceiver.__decoder_queue``. We replace that queue object, so the frame reaches
  the bridge on the event loop, in ``_handle_rtp_packet``, right after the jitter buffer:
  no decoder is created and no thread hop happens. The alternative named in DESIGN.md
  (a ``get_decoder`` returning ``av.Packet``) was measured against this one (see the
  bridge report): it also works but costs a thread hop plus
  ``run_coroutine_threadsafe`` per frame, is process-wide (every receiver in the process
  becomes passthrough) and still needs the unbounded track queue. Can go when aiortc
  exposes encoded frames (an "encoded transform" / ``RTCRtpReceiver`` frame callback).
* ``make_sender_passthrough`` (per sender): a sender whose track yields ``av.Packet``
  already skips encoding, but it still builds a full encoder through ``get_encoder``
  (for Opus that opens a libopus encoder and a resampler) and it drops keyframe
  requests (``_send_keyframe`` only sets a flag for its encoder). We give the sender a
  packetizer that never encodes and route PLI/FIR to the bridge. Can go when aiortc
  lets a packet-producing track receive keyframe requests and skips building encoders.
* ``send_picture_loss_indication``: calls the receiver's private ``_send_rtcp_pli``;
  there is no public way to ask a remote sender for a keyframe.
* Global, installed by ``install_global_patches`` (idempotent):

  - ``aioice.ice.Connection.data_received`` drops zero-length datagrams. aioice 0.13
    passes them on, aiortc's DTLS transport reads ``data[0]``, the IndexError ends its
    receive loop and the live call closes: anyone who can send one UDP datagram to the
    media port can end a call. It also bounds the connection's inbound queue (aioice's
    is an unbounded ``asyncio.Queue``), dropping new datagrams when it is full, as a
    kernel socket buffer would. Can go when aioice ignores empty datagrams and bounds
    its queue.
  - ``aioice.ice.get_host_addresses`` honours ``limit_ice_host_addresses``: aioice
    gathers host candidates on every interface and always skips 127.0.0.1, so tests and
    the bench could not stay on loopback and a media node could not be pinned to one
    interface. Can go when aioice takes an interface list.
  - ``aioice.ice.Connection.get_component_candidates`` binds host candidates inside
    ``use_media_ports``' UDP port range and announces ``announce_ice_addresses``'
    public address in place of the bound one (a 1:1 NAT in a cloud), so a media node
    can be firewalled to one range and reached through an address no local interface
    has. aioice 0.13 binds port 0 on each address and announces what it bound. A full
    range refuses the leg (``MediaNegotiationError`` ``media_ports_exhausted``) instead
    of answering without candidates. Only the host part is ours: STUN and TURN
    gathering (unused by the server) still run aioice's own code. Can go when aioice
    takes a port range and a 1:1 NAT mapping (as pion's ``SetNAT1To1IPs``/
    ``SetEphemeralUDPPortRange`` do).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import queue
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

import aioice
import aioice.ice
import aioice.turn
import aiortc
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import convert_timebase
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from signaling.media_errors import MediaNegotiationError

logger = logging.getLogger(__name__)

CHECKED_VERSIONS: Final = {"aiortc": "1.16.0", "aioice": "0.13.0"}

# Datagrams waiting for aiortc's DTLS loop, per ICE connection. 2048 full-size datagrams
# are about 2.5 MB, several seconds of a 2 Mbps call: plenty for a loop that is not stuck.
MAX_PENDING_DATAGRAMS: Final = 2048

# The attribute names aiortc's name mangling gives the private fields we replace.
RECEIVER_DECODER_QUEUE_ATTR: Final = "_RTCRtpReceiver__decoder_queue"
RECEIVER_DECODER_THREAD_ATTR: Final = "_RTCRtpReceiver__decoder_thread"
SENDER_ENCODER_ATTR: Final = "_RTCRtpSender__encoder"

MEDIA_PORTS_EXHAUSTED: Final = "media_ports_exhausted"
"""The ``MediaNegotiationError`` code of a leg refused because every port is taken."""

OnEncodedFrame = Callable[[str, int, bytes, int], None]
"""(codec name, clock rate, frame data, unwrapped RTP timestamp), called on the loop."""


@dataclass(slots=True)
class DatagramDropCounts:
    empty: int = 0
    queue_full: int = 0


@dataclass(slots=True)
class _PatchState:
    installed: bool = False
    host_addresses: list[str] | None = None
    original_data_received: Callable[..., None] | None = None
    original_get_host_addresses: Callable[..., list[str]] | None = None
    original_get_component_candidates: Callable[..., Any] | None = None
    port_range: tuple[int, int] | None = None
    # The next port of the range to try: legs spread over the range instead of always
    # probing from its start.
    next_port: int = 0
    announced: dict[str, str] = field(default_factory=dict)


_drops = DatagramDropCounts()
_state = _PatchState()


class UnsupportedMediaStackError(RuntimeError):
    """aiortc or aioice is outside the versions these patches were checked on."""


def supported_specifier(package: str) -> str:
    """The compatible-release range of the checked version (``~=1.16.0``: any 1.16.x).

    pyproject.toml pins the same ranges; a unit test keeps the two equal.
    """
    return f"~={CHECKED_VERSIONS[package]}"


def media_stack_problems(found: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per package whose installed version the patches were not checked on."""
    if found is None:
        found = {"aiortc": aiortc.__version__, "aioice": aioice.__version__}
    problems: list[str] = []
    for package in CHECKED_VERSIONS:
        version = found.get(package, "not installed")
        specifier = SpecifierSet(supported_specifier(package))
        try:
            # Pre-releases are refused too: nothing was checked on them.
            supported = specifier.contains(Version(version), prereleases=False)
        except InvalidVersion:
            supported = False
        if not supported:
            problems.append(
                f"{package} {version} is installed, but the media patches in "
                f"signaling/aiortc_patches.py were checked on {package} "
                f"{CHECKED_VERSIONS[package]} (supported: {package}{specifier})"
            )
    return problems


def require_checked_versions(found: Mapping[str, str] | None = None) -> None:
    """Refuse to run the media path on versions the patches were not checked on.

    The patches reach into private internals: on another version they could silently
    decode, encode or drop calls. Raises ``UnsupportedMediaStackError`` naming each.
    """
    problems = media_stack_problems(found)
    if problems:
        raise UnsupportedMediaStackError(
            "; ".join(problems)
            + ". Install the supported versions (pip install -e .), or follow README.md "
            '"Moving to a new aiortc or aioice" to check the patches on the new ones.'
        )


def _data_received(self: Any, data: bytes, component: int) -> None:
    if not data:
        _drops.empty += 1
        return
    if self._queue.qsize() >= MAX_PENDING_DATAGRAMS:
        _drops.queue_full += 1
        return
    assert _state.original_data_received is not None
    _state.original_data_received(self, data, component)


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _state.host_addresses is not None:
        return [
            address
            for address in _state.host_addresses
            if (":" in address and use_ipv6) or (":" not in address and use_ipv4)
        ]
    assert _state.original_get_host_addresses is not None
    return _state.original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)


def _bind_host(address: str) -> socket.socket | None:
    """A UDP socket bound to ``address`` on a free port of the range (any port without
    one); ``None`` when the address cannot be bound at all (aioice skips it too); raises
    ``MediaNegotiationError`` when every port of the range is taken."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    low, high = _state.port_range or (0, 0)
    size = high - low + 1
    for attempt in range(size):
        port = low + (_state.next_port - low + attempt) % size
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and port:
                continue
            logger.info("could not bind a media port on %s: %s", address, exc.strerror)
            return None
        _state.next_port = low + (port - low + 1) % size
        return sock
    raise MediaNegotiationError(
        MEDIA_PORTS_EXHAUSTED,
        f"every media port ({low}-{high}) is in use on this server; try again in a moment",
        retryable=True,
    )


async def _get_component_candidates(
    self: Any,
    component: int,
    addresses: list[str],
    timeout: int = 5,  # noqa: ASYNC109 (aioice's own signature)
) -> Any:
    original = _state.original_get_component_candidates
    assert original is not None
    if _state.port_range is None and not _state.announced:
        return await original(self, component=component, addresses=addresses, timeout=timeout)
    loop = asyncio.get_running_loop()
    candidates: list[Candidate] = []
    for address in addresses:
        sock = _bind_host(address)
        if sock is None:
            continue
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
        sock.setblocking(False)
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: aioice.ice.StunProtocol(self), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        bound_host, port = sock.getsockname()[:2]
        host = _state.announced.get(address, bound_host)
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        candidates.append(protocol.local_candidate)
        self._protocols.append(protocol)
    # STUN and TURN gathering, if configured, stay aioice's own (without host sockets
    # there is nothing to ask a STUN server about: a public address is announced instead).
    candidates += await original(self, component=component, addresses=[], timeout=timeout)
    return candidates


def install_global_patches() -> None:
    """Install the process-wide aioice patches (safe to call any number of times)."""
    if _state.installed:
        return
    require_checked_versions()
    _state.original_data_received = aioice.ice.Connection.data_received
    _state.original_get_host_addresses = aioice.ice.get_host_addresses
    _state.original_get_component_candidates = aioice.ice.Connection.get_component_candidates
    aioice.ice.Connection.data_received = _data_received  # type: ignore[method-assign]
    aioice.ice.get_host_addresses = _get_host_addresses
    aioice.ice.Connection.get_component_candidates = _get_component_candidates  # type: ignore[method-assign]
    _state.installed = True


def uninstall_global_patches() -> None:
    """Restore aioice (for tests that need to show the bug the patch fixes)."""
    if not _state.installed:
        return
    assert _state.original_data_received is not None
    assert _state.original_get_host_addresses is not None
    aioice.ice.Connection.data_received = _state.original_data_received  # type: ignore[method-assign]
    aioice.ice.get_host_addresses = _state.original_get_host_addresses
    assert _state.original_get_component_candidates is not None
    aioice.ice.Connection.get_component_candidates = _state.original_get_component_candidates  # type: ignore[method-assign]
    _state.installed = False


def limit_ice_host_addresses(addresses: Sequence[str] | None) -> None:
    """Gather host candidates only on ``addresses`` (``None``: aioice's default).

    Process-wide, like aioice's gathering itself; call it once at start-up. Installs the
    global patches if needed.
    """
    install_global_patches()
    _state.host_addresses = None if addresses is None else list(addresses)


def use_media_ports(port_range: tuple[int, int] | None) -> None:
    """Bind host candidates only on UDP ports ``low..high`` (inclusive; ``None``: any
    port, aioice's default). Process-wide; call once at start-up, before any leg.

    Each leg takes one port per ICE host address while it lives; when none is free a new
    leg is refused with ``MediaNegotiationError`` (code ``media_ports_exhausted``).
    """
    if port_range is not None:
        low, high = port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"bad media port range {low}-{high}")
    install_global_patches()
    _state.port_range = port_range
    _state.next_port = port_range[0] if port_range else 0


def announce_ice_addresses(announced: Mapping[str, str]) -> None:
    """Offer ``announced[bound]`` in host candidates instead of the bound address (a 1:1
    NAT: the node binds its private address, browsers reach its public one). Empty:
    announce what is bound. Process-wide; call once at start-up.
    """
    for bound, public in announced.items():
        if ipaddress.ip_address(bound).version != ipaddress.ip_address(public).version:
            raise ValueError(f"{public} and {bound} are not of the same IP version")
    install_global_patches()
    _state.announced = dict(announced)


def configure_media_sockets(
    host_addresses: Sequence[str] | None,
    *,
    udp_receive_buffer_bytes: int,
    port_range: tuple[int, int] | None = None,
    announced: Mapping[str, str] | None = None,
) -> None:
    """Everything about the media sockets of this process, set once at start-up (a media
    worker, or the serving process with media workers off); ``reset_media_sockets`` undoes it."""
    limit_ice_host_addresses(host_addresses)
    set_udp_receive_buffer(udp_receive_buffer_bytes)
    use_media_ports(port_range)
    announce_ice_addresses(announced or {})


def reset_media_sockets() -> None:
    """aioice's own gathering again (every interface, any port, bound addresses announced)."""
    limit_ice_host_addresses(None)
    use_media_ports(None)
    announce_ice_addresses({})


def set_udp_receive_buffer(size_bytes: int) -> None:
    """Ask the kernel for ``size_bytes`` of receive buffer on every media socket opened
    from now on (aioice reads ``aioice.turn.UDP_SOCKET_BUFFER_SIZE`` when it opens one).

    aioice asks for 256 KiB; at 20 calls in one process the kernel dropped 4.8 % of the
    incoming datagrams for full buffers (``RcvbufErrors``). The kernel caps the size at
    ``net.core.rmem_max``. Can go when aioice takes the size as a parameter.
    """
    if size_bytes < 65536:
        raise ValueError("the UDP receive buffer must be at least 64 KiB")
    aioice.turn.UDP_SOCKET_BUFFER_SIZE = size_bytes


def datagram_drop_counts() -> DatagramDropCounts:
    """How many inbound datagrams the global patch dropped, process-wide."""
    return DatagramDropCounts(empty=_drops.empty, queue_full=_drops.queue_full)


class _EncodedFrameTap:
    """Stands in for an ``RTCRtpReceiver``'s decoder queue (a ``queue.Queue``).

    ``put`` is called on the event loop by ``_handle_rtp_packet`` with
    ``(codec, JitterFrame)`` and by the receiver's stop path with ``None``. ``get`` is
    called by the receiver's decoder thread, which we leave running idle so that
    aiortc's start/stop bookkeeping (start thread, put None, join) stays untouched: it
    blocks until the receiver stops, then returns ``None`` and the thread ends.
    """

    def __init__(self, on_frame: OnEncodedFrame) -> None:
        self._on_frame = on_frame
        self._stopped = threading.Event()

    def put(self, item: Any) -> None:
        if item is None:
            self._stopped.set()
            return
        codec, frame = item
        self._on_frame(codec.name, codec.clockRate, frame.data, frame.timestamp)

    def get(self) -> None:
        self._stopped.wait()


def tap_receiver(receiver: Any, on_frame: OnEncodedFrame) -> None:
    """Deliver ``receiver``'s encoded frames to ``on_frame`` instead of a decoder.

    Must be called before the receiver starts (before the peer connection connects).
    """
    current = getattr(receiver, RECEIVER_DECODER_QUEUE_ATTR, None)
    if not isinstance(current, queue.Queue):
        raise RuntimeError(
            f"RTCRtpReceiver has no {RECEIVER_DECODER_QUEUE_ATTR} queue: aiortc changed, "
            "re-check signaling/aiortc_patches.py"
        )
    if getattr(receiver, RECEIVER_DECODER_THREAD_ATTR, None) is not None:
        raise RuntimeError("tap_receiver must be called before the receiver starts")
    setattr(receiver, RECEIVER_DECODER_QUEUE_ATTR, _EncodedFrameTap(on_frame))


class PassthroughPacketizer:
    """Takes the place of a sender's encoder: packetizes ``av.Packet``s, never encodes.

    Reuses aiortc's packetizers (class methods, no codec context). VP8 input must be a
    raw VP8 frame, H264 input Annex-B, Opus input one Opus packet.
    """

    def __init__(self, codec: str, clock_rate: int) -> None:
        self.codec = codec
        self._time_base = Fraction(1, clock_rate)
        # Picture IDs count frames; start anywhere, as aiortc's own encoder does.
        self._picture_id = 0

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise RuntimeError("a passthrough sender was given a raw frame to encode")

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        data = bytes(packet)
        timestamp = int(convert_timebase(packet.pts, packet.time_base, self._time_base))
        if self.codec == "VP8":
            payloads = Vp8Encoder._packetize(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
        elif self.codec == "H264":
            payloads = H264Encoder._packetize(H264Encoder._split_bitstream(data))
        else:
            payloads = [data]
        return payloads, timestamp


def make_sender_passthrough(
    sender: Any, *, codec: str, clock_rate: int, on_keyframe_request: Callable[[], None]
) -> None:
    """Make ``sender`` packetize its track's packets without an encoder.

    ``on_keyframe_request`` is called (on the loop) for every PLI or FIR the remote peer
    sends about this sender's stream. Must be called before the sender starts.
    """
    if not hasattr(sender, SENDER_ENCODER_ATTR) or not hasattr(sender, "_send_keyframe"):
        raise RuntimeError("RTCRtpSender internals changed: re-check signaling/aiortc_patches.py")
    if getattr(sender, SENDER_ENCODER_ATTR) is not None:
        raise RuntimeError("make_sender_passthrough must be called before the sender starts")
    setattr(sender, SENDER_ENCODER_ATTR, PassthroughPacketizer(codec, clock_rate))
    # An instance attribute shadows the method that _handle_rtcp_packet calls.
    sender._send_keyframe = on_keyframe_request


async def send_picture_loss_indication(receiver: Any, media_ssrc: int) -> None:
    """Ask the remote sender of ``media_ssrc`` for a keyframe (RTCP PLI)."""
    await receiver._send_rtcp_pli(media_ssrc)
