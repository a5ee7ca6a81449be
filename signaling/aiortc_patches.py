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
  The packetizer also hears the receiving browser's REMB: aiortc's sender hands every
  REMB naming its SSRC to ``encoder.target_bitrate`` (for its own encoders), so a
  ``target_bitrate`` property on the packetizer is where the receiver's downlink
  estimate reaches the bridge, with no further patch. Can go with the rest of it.
* ``cap_receive_estimate`` (per video receiver): aiortc's receiver sends the remote
  sender a REMB computed only from its own receive estimate (``rate.py``
  ``RemoteBitrateEstimator``), inline in ``_handle_rtp_packet``; an SFU must tell the
  sender what the *other* leg's receiver can take. We replace the receiver's estimator
  object with one that wraps it and caps what it reports (and reports a falling cap at
  once, rate-limited, instead of waiting for the estimator's own next report). Can go
  when aiortc lets an application set or filter the REMB it sends.
* ``bound_video_wait`` (per video receiver): aiortc's video jitter buffer waits for a
  lost packet until 512 packets have queued behind it (10-20 s of frozen picture on a
  weak link when the retransmission is lost too). We replace the receiver's buffer with
  ``signaling.video_jitter_buffer.BoundedWaitJitterBuffer``, which gives up after
  ``max_wait_s`` and asks for a keyframe, as libwebrtc does; while it waits it NACKs
  the holes it waits on again (aiortc NACKs only when a new packet goes missing),
  through the receiver's private ``_send_rtcp_nack``. Can go when aiortc's buffer bounds its
  wait and its NACK generator retries.
* ``observe_receiver_reports`` (per video sender): an instance attribute shadows the
  sender's ``_handle_rtcp_packet`` to hear every receiver report block about its stream,
  with the round-trip time by RFC 3550 section 6.4.1. aiortc computes a round trip only
  when a report refers to its latest sender report, so once the round trip outgrows
  the sender-report interval (a queue of a second on a weak link) it never updates.
  Can go when aiortc exposes receiver reports and computes the round trip as the RFC
  does.
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
  - Bounded ICE (DESIGN.md section 8, "ICE scope (contract)"). aioice 0.13 pairs every
    remote candidate it is given, learns a peer-reflexive candidate (and starts a check)
    for every source address of an authenticated check, resolves ``.local`` names by
    multicast, and checks any address: a participant holding its own leg's ICE
    credentials made 9,302 pairs from 30,000 source ports in 30 s at ~100 % CPU, and an
    offer could make the server send checks into its own private network. So:

    * ``Connection.add_remote_candidate`` ignores ``.local`` (mDNS) candidates (the
      bridge refuses a trickled one with an error first) and any past
      ``MAX_REMOTE_CANDIDATES`` signalled ones per connection (one per leg: bundled).
    * ``Connection._pair_remote_candidate`` pairs (so checks) only candidates
      ``ice_address_allowed``: public addresses, or loopback / private / link-local ones
      when one of the connection's own host addresses (``INBOXCALL_ICE_HOST_ADDRESSES``)
      is in the same scope -- so loopback tests and single-LAN deployments need nothing.
    * ``Connection.request_received`` does not answer checks from addresses outside that
      scope, nor from a new source address once ``MAX_PEER_REFLEXIVE_CANDIDATES``
      peer-reflexive candidates were learned; ``Connection.check_incoming`` enforces the
      same cap on the checks aioice held back until ``connect()``. A check that reached a
      socket bound to loopback came from this host over ``lo`` whatever its source
      address (Chromium on the same machine checks from its interface address): its path
      is loopback, so it is answered, and the triggered check back stays on the host.

    Can go when aioice bounds its candidate and pair lists and takes an address policy.
  - ``aioice.ice.StunProtocol.datagram_received`` drops media datagrams (anything that
    is not STUN, RFC 7983) whose source is not the address of a candidate pair of that
    socket, before they are queued. aioice hands every non-STUN datagram to the DTLS
    transport, which tries to decrypt it: 40,000 RTP-looking junk datagrams at a leg's
    port cost the loop about 18 us each, most of a second, while the leg's real packets
    waited behind them in the same socket. Dropped here, junk costs about 3 us
    (``bench/bench_media_abuse.py``). Can go when aioice filters by pair address.
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
import functools
import ipaddress
import logging
import queue
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Final, Literal

import aioice
import aioice.ice
import aioice.mdns
import aioice.turn
import aiortc
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc.clock import current_ntp_time
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import convert_timebase
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSrPacket
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from signaling import video_jitter_buffer
from signaling.media_errors import MediaNegotiationError
from signaling.video_jitter_buffer import VIDEO_CAPACITY, BoundedWaitJitterBuffer

logger = logging.getLogger(__name__)

CHECKED_VERSIONS: Final = {"aiortc": "1.16.0", "aioice": "0.13.0"}

# Datagrams waiting for aiortc's DTLS loop, per ICE connection. 2048 full-size datagrams
# are about 2.5 MB, several seconds of a 2 Mbps call: plenty for a loop that is not stuck.
MAX_PENDING_DATAGRAMS: Final = 2048

# The attribute names aiortc's name mangling gives the private fields we replace.
RECEIVER_DECODER_QUEUE_ATTR: Final = "_RTCRtpReceiver__decoder_queue"
RECEIVER_DECODER_THREAD_ATTR: Final = "_RTCRtpReceiver__decoder_thread"
SENDER_ENCODER_ATTR: Final = "_RTCRtpSender__encoder"
RECEIVER_BITRATE_ESTIMATOR_ATTR: Final = "_RTCRtpReceiver__remote_bitrate_estimator"
RECEIVER_JITTER_BUFFER_ATTR: Final = "_RTCRtpReceiver__jitter_buffer"
RECEIVER_SEND_NACK_ATTR: Final = "_send_rtcp_nack"

# A capped estimate is re-sent between the estimator's own reports (every 500 ms) only
# when it changed by this share, and at most this often: REMB is a few dozen bytes, but
# a browser re-plans its encoder on each one.
CAP_REPORT_CHANGE: Final = 0.1
CAP_REPORT_MIN_INTERVAL_MS: Final = 200

MEDIA_PORTS_EXHAUSTED: Final = "media_ports_exhausted"
"""The ``MediaNegotiationError`` code of a leg refused because every port is taken."""

OnEncodedFrame = Callable[[str, int, bytes, int], None]
"""(codec name, clock rate, frame data, unwrapped RTP timestamp), called on the loop."""


# Per ICE connection (one per leg: the bridge bundles audio and video). Browsers signal
# a handful of candidates (host per interface, srflx, relay per TURN server) and learn
# one or two peer-reflexive ones behind NATs or mDNS-hidden hosts.
MAX_REMOTE_CANDIDATES: Final = 32
MAX_PEER_REFLEXIVE_CANDIDATES: Final = 8

AddressScope = Literal["public", "private", "link_local", "loopback", "unusable"]
# RFC 6598 shared address space (carrier-grade NAT, also Tailscale): not public, and
# Python's ipaddress counts it neither private nor global.
_SHARED_ADDRESS_SPACE: Final = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK: Final = ipaddress.ip_network("0.0.0.0/8")
# RFC 5737 / RFC 3849 documentation ranges stand in for public addresses (an announced
# 203.0.113.7 in tests and examples): scoped as public, though Python calls them private.
# Unroutable, so checking one reaches nothing.
_DOCUMENTATION: Final = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
# RFC 7983: the first byte of a STUN message is 0-3; anything else is DTLS, RTP or junk.
_STUN_FIRST_BYTE_MAX: Final = 3


@dataclass(slots=True)
class DatagramDropCounts:
    empty: int = 0
    queue_full: int = 0
    unknown_source: int = 0
    """Media datagrams from an address that is no candidate pair of the socket."""


@dataclass(slots=True)
class IceRefusalCounts:
    """Process-wide counts of what the bounded-ICE patches refused or ignored."""

    mdns_candidates: int = 0
    candidates_over_cap: int = 0
    candidates_out_of_scope: int = 0
    checks_out_of_scope: int = 0
    peer_reflexive_over_cap: int = 0


@dataclass(slots=True)
class _PatchState:
    installed: bool = False
    host_addresses: list[str] | None = None
    original_data_received: Callable[..., None] | None = None
    original_get_host_addresses: Callable[..., list[str]] | None = None
    original_datagram_received: Callable[..., None] | None = None
    original_add_remote_candidate: Callable[..., Any] | None = None
    original_pair_remote_candidate: Callable[..., None] | None = None
    original_request_received: Callable[..., None] | None = None
    original_check_incoming: Callable[..., None] | None = None
    original_get_component_candidates: Callable[..., Any] | None = None
    port_range: tuple[int, int] | None = None
    # The next port of the range to try: legs spread over the range instead of always
    # probing from its start.
    next_port: int = 0
    announced: dict[str, str] = field(default_factory=dict)


_drops = DatagramDropCounts()
_ice = IceRefusalCounts()
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


# ---- bounded ICE ------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def address_scope(host: str) -> AddressScope:
    """Which scope an ICE address is in; ``unusable`` for what is never checked (not an IP
    address, unspecified, multicast, broadcast, reserved)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "unusable"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return "unusable"
    # Before is_reserved, which also holds for ::1 (part of the reserved ::/8).
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_reserved or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return "unusable"
    if any(ip.version == net.version and ip in net for net in _DOCUMENTATION):
        return "public"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE):
        return "private"
    return "public" if ip.is_global else "unusable"


def ice_address_allowed(host: str, own_host_addresses: Sequence[str]) -> bool:
    """The ICE scope contract: check (and answer checks from) ``host`` when it is public,
    or when one of our own host addresses is in the same (non-public) scope."""
    scope = address_scope(host)
    if scope == "public":
        return True
    if scope == "unusable":
        return False
    return any(address_scope(own) == scope for own in own_host_addresses)


def _bound_host(protocol: Any) -> str | None:
    """The address a host candidate's socket is bound to (an ``INBOXCALL_ICE_HOST_ADDRESSES``
    entry), which is not the candidate's own address when a public one is announced."""
    candidate = getattr(protocol, "local_candidate", None)
    if candidate is None or candidate.type != "host":
        return None
    transport = getattr(protocol, "transport", None)
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return str(sockname[0]) if sockname else str(candidate.host)


def _own_host_addresses(connection: Any) -> list[str]:
    """The addresses this connection's host candidates are bound to."""
    return [host for p in connection._protocols if (host := _bound_host(p)) is not None]


def _known_remote(connection: Any, addr: tuple[str, int]) -> bool:
    return any(
        c._network_host == addr[0] and c.port == addr[1] for c in connection._remote_candidates
    )


def _over_loopback(protocol: Any) -> bool:
    """Whether ``protocol``'s socket is bound to a loopback address: the kernel delivers
    only this host's own traffic there (and sends nothing from it off the host), whatever
    source address that traffic carries -- a browser on this machine checks from its
    interface address (Chromium: 192.0.2.2 -> 127.0.0.1 over ``lo``)."""
    host = _bound_host(protocol)
    return host is not None and address_scope(host) == "loopback"


def _admit_check(connection: Any, addr: tuple[str, int], protocol: Any) -> bool:
    if not (
        _over_loopback(protocol) or ice_address_allowed(addr[0], _own_host_addresses(connection))
    ):
        _ice.checks_out_of_scope += 1
        return False
    if _known_remote(connection, addr):
        return True
    learned = sum(1 for c in connection._remote_candidates if c.type == "prflx")
    if learned >= MAX_PEER_REFLEXIVE_CANDIDATES:
        _ice.peer_reflexive_over_cap += 1
        if _ice.peer_reflexive_over_cap == 1 or _ice.peer_reflexive_over_cap % 1000 == 0:
            logger.warning(
                "ICE: checks from new source addresses ignored past %d peer-reflexive "
                "candidates (%d so far, process-wide)",
                MAX_PEER_REFLEXIVE_CANDIDATES,
                _ice.peer_reflexive_over_cap,
            )
        return False
    return True


async def _add_remote_candidate(self: Any, remote_candidate: Any) -> None:
    if remote_candidate is not None:
        if aioice.mdns.is_mdns_hostname(remote_candidate.host):
            # Resolving would send multicast queries into the node's network on request
            # of anyone who can send an offer; browsers also offer a routable candidate
            # or reach us as peer-reflexive.
            _ice.mdns_candidates += 1
            return
        signalled = sum(1 for c in self._remote_candidates if c.type != "prflx")
        if signalled >= MAX_REMOTE_CANDIDATES:
            _ice.candidates_over_cap += 1
            return
    assert _state.original_add_remote_candidate is not None
    await _state.original_add_remote_candidate(self, remote_candidate)


def _pair_remote_candidate(self: Any, remote_candidate: Any) -> None:
    if not self._protocols:
        return  # not gathered yet: connect() pairs every remote candidate again
    if not ice_address_allowed(remote_candidate._network_host, _own_host_addresses(self)):
        _ice.candidates_out_of_scope += 1
        return
    assert _state.original_pair_remote_candidate is not None
    _state.original_pair_remote_candidate(self, remote_candidate)


def _request_received(self: Any, message: Any, addr: tuple[str, int], protocol: Any) -> None:
    if not _admit_check(self, (addr[0], addr[1]), protocol):
        return  # no answer: an unanswered check costs the sender, not us
    assert _state.original_request_received is not None
    _state.original_request_received(self, message, addr, protocol)


def _check_incoming(self: Any, message: Any, addr: tuple[str, int], protocol: Any) -> None:
    # Checks held back until connect() were admitted before the cap could count them.
    if not _admit_check(self, (addr[0], addr[1]), protocol):
        return
    assert _state.original_check_incoming is not None
    _state.original_check_incoming(self, message, addr, protocol)


def _from_candidate_pair(protocol: Any, addr: tuple[str, int]) -> bool:
    connection = protocol.receiver
    nominated = connection._nominated.get(protocol.local_candidate.component)
    if nominated is not None and nominated.protocol is protocol and nominated.remote_addr == addr:
        return True  # the media path: one comparison
    failed = aioice.ice.CandidatePair.State.FAILED
    return any(
        pair.protocol is protocol and pair.remote_addr == addr and pair.state is not failed
        for pair in connection._check_list
    )


def _datagram_received(self: Any, data: bytes, addr: tuple[Any, ...]) -> None:
    if data and data[0] > _STUN_FIRST_BYTE_MAX:
        if not _from_candidate_pair(self, (addr[0], addr[1])):
            _drops.unknown_source += 1
            return
        # Not STUN (RFC 7983): skip aioice's parse attempt, as it would fail anyway.
        self.receiver.data_received(data, self.local_candidate.component)
        return
    assert _state.original_datagram_received is not None
    _state.original_datagram_received(self, data, addr)


def ice_refusal_counts() -> IceRefusalCounts:
    """What the bounded-ICE patches refused or ignored so far, process-wide."""
    return IceRefusalCounts(**asdict(_ice))


# (owner, attribute, replacement, where the original is kept)


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


_GLOBAL_PATCHES: Final = (
    (aioice.ice.Connection, "data_received", _data_received, "original_data_received"),
    (aioice.ice, "get_host_addresses", _get_host_addresses, "original_get_host_addresses"),
    (
        aioice.ice.Connection,
        "get_component_candidates",
        _get_component_candidates,
        "original_get_component_candidates",
    ),
    (
        aioice.ice.StunProtocol,
        "datagram_received",
        _datagram_received,
        "original_datagram_received",
    ),
    (
        aioice.ice.Connection,
        "add_remote_candidate",
        _add_remote_candidate,
        "original_add_remote_candidate",
    ),
    (
        aioice.ice.Connection,
        "_pair_remote_candidate",
        _pair_remote_candidate,
        "original_pair_remote_candidate",
    ),
    (aioice.ice.Connection, "request_received", _request_received, "original_request_received"),
    (aioice.ice.Connection, "check_incoming", _check_incoming, "original_check_incoming"),
)


def install_global_patches() -> None:
    """Install the process-wide aioice patches (safe to call any number of times)."""
    if _state.installed:
        return
    require_checked_versions()
    for owner, attribute, replacement, keep in _GLOBAL_PATCHES:
        setattr(_state, keep, getattr(owner, attribute))
        setattr(owner, attribute, replacement)
    _state.installed = True


def uninstall_global_patches() -> None:
    """Restore aioice (for tests that need to show the bug the patch fixes)."""
    if not _state.installed:
        return
    for owner, attribute, _replacement, keep in _GLOBAL_PATCHES:
        original = getattr(_state, keep)
        assert original is not None
        setattr(owner, attribute, original)
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
    return DatagramDropCounts(**asdict(_drops))


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


def bound_video_wait(
    receiver: Any,
    on_gap: Callable[[], None],
    max_wait_s: float = video_jitter_buffer.DEFAULT_MAX_WAIT_S,
) -> BoundedWaitJitterBuffer:
    """Give ``receiver`` (a video one) a jitter buffer that gives up on a lost packet
    after ``max_wait_s``; ``on_gap`` hears each give-up. Call before it starts."""
    current = getattr(receiver, RECEIVER_JITTER_BUFFER_ATTR, None)
    if not isinstance(current, JitterBuffer) or current.capacity != VIDEO_CAPACITY:
        raise RuntimeError(
            f"RTCRtpReceiver has no video {RECEIVER_JITTER_BUFFER_ATTR}: aiortc changed, "
            "re-check signaling/aiortc_patches.py"
        )
    if not callable(getattr(receiver, RECEIVER_SEND_NACK_ATTR, None)):
        raise RuntimeError(
            f"RTCRtpReceiver has no {RECEIVER_SEND_NACK_ATTR}: aiortc changed, "
            "re-check signaling/aiortc_patches.py"
        )
    sending: set[asyncio.Task[None]] = set()

    def ask_again(media_ssrc: int, lost: list[int]) -> None:
        # Called from the receiver's own coroutine (_handle_rtp_packet), on the loop.
        if not lost or len(sending) > 1:
            return
        send_nack = getattr(receiver, RECEIVER_SEND_NACK_ATTR)
        task = asyncio.get_running_loop().create_task(send_nack(media_ssrc, lost))
        sending.add(task)
        task.add_done_callback(sending.discard)

    buffer = BoundedWaitJitterBuffer(
        max_wait_s=max_wait_s, on_gap=on_gap, on_still_missing=ask_again
    )
    setattr(receiver, RECEIVER_JITTER_BUFFER_ATTR, buffer)
    return buffer


class PassthroughPacketizer:
    """Takes the place of a sender's encoder: packetizes ``av.Packet``s, never encodes.

    Reuses aiortc's packetizers (class methods, no codec context). VP8 input must be a
    raw VP8 frame, H264 input Annex-B, Opus input one Opus packet.

    ``target_bitrate`` is set by aiortc's sender to every REMB the remote receiver sends
    about this stream (bits per second); ``on_target_bitrate`` hears each one.
    """

    def __init__(
        self,
        codec: str,
        clock_rate: int,
        on_target_bitrate: Callable[[int], None] | None = None,
    ) -> None:
        self.codec = codec
        self._time_base = Fraction(1, clock_rate)
        # Picture IDs count frames; start anywhere, as aiortc's own encoder does.
        self._picture_id = 0
        self._target_bitrate: int | None = None
        self._on_target_bitrate = on_target_bitrate

    @property
    def target_bitrate(self) -> int | None:
        """The last REMB the remote receiver sent about this stream, or None."""
        return self._target_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self._target_bitrate = bitrate
        if self._on_target_bitrate is not None:
            self._on_target_bitrate(bitrate)

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
    sender: Any,
    *,
    codec: str,
    clock_rate: int,
    on_keyframe_request: Callable[[], None],
    on_receiver_estimate: Callable[[int], None] | None = None,
) -> None:
    """Make ``sender`` packetize its track's packets without an encoder.

    ``on_keyframe_request`` is called (on the loop) for every PLI or FIR the remote peer
    sends about this sender's stream; ``on_receiver_estimate`` for every REMB (bits per
    second) it sends about it. NACKs need nothing: aiortc's sender answers them from its
    own history of the packets it sent, packetized here. Must be called before the
    sender starts.
    """
    if not hasattr(sender, SENDER_ENCODER_ATTR) or not hasattr(sender, "_send_keyframe"):
        raise RuntimeError("RTCRtpSender internals changed: re-check signaling/aiortc_patches.py")
    if getattr(sender, SENDER_ENCODER_ATTR) is not None:
        raise RuntimeError("make_sender_passthrough must be called before the sender starts")
    setattr(
        sender,
        SENDER_ENCODER_ATTR,
        PassthroughPacketizer(codec, clock_rate, on_target_bitrate=on_receiver_estimate),
    )
    # An instance attribute shadows the method that _handle_rtcp_packet calls.
    sender._send_keyframe = on_keyframe_request


OnReceiverReport = Callable[[int, int, float | None], None]
"""Packets lost so far (cumulative), the extended highest sequence number received, and
the round-trip time in seconds (None: not known)."""

# A round trip longer than this is a report that crossed a clock change, not a network.
MAX_ROUND_TRIP_S: Final = 60.0


def round_trip_time(report: RtcpReceiverInfo, ntp_now: int) -> float | None:
    """RFC 3550 6.4.1: arrival time - LSR - DLSR, in NTP's middle 32 bits (1/65536 s);
    None when the report refers to no sender report yet."""
    if not report.lsr:
        return None
    arrival = (ntp_now >> 16) & 0xFFFFFFFF
    seconds = ((arrival - report.lsr - report.dlsr) & 0xFFFFFFFF) / 65536
    return seconds if seconds <= MAX_ROUND_TRIP_S else None


def observe_receiver_reports(sender: Any, on_report: OnReceiverReport) -> None:
    """Call ``on_report`` (on the loop) for every RTCP receiver report block the remote
    peer sends about ``sender``'s stream, before aiortc handles the packet."""
    handle = getattr(sender, "_handle_rtcp_packet", None)
    if not callable(handle) or not hasattr(sender, "_ssrc"):
        raise RuntimeError("RTCRtpSender internals changed: re-check signaling/aiortc_patches.py")

    async def observed(packet: Any) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    rtt = round_trip_time(report, current_ntp_time())
                    on_report(report.packets_lost, report.highest_sequence, rtt)
        await handle(packet)

    # An instance attribute shadows the method the DTLS transport calls.
    sender._handle_rtcp_packet = observed


async def send_picture_loss_indication(receiver: Any, media_ssrc: int) -> None:
    """Ask the remote sender of ``media_ssrc`` for a keyframe (RTCP PLI)."""
    await receiver._send_rtcp_pli(media_ssrc)


class CappedBitrateEstimator:
    """Stands in for a video receiver's ``RemoteBitrateEstimator``: the REMB the remote
    sender gets is ``min(own estimate, cap())``.

    aiortc calls ``add`` for every RTP packet carrying abs-send-time and sends a REMB
    with whatever non-None ``(bitrate, ssrcs)`` it returns. ``cap()`` is read on every
    packet (cheap: the bridge keeps it as a plain number) and returns bits per second or
    None (no cap). Between the wrapped estimator's own reports, a cap that moved by
    ``CAP_REPORT_CHANGE`` is reported at once, at most every
    ``CAP_REPORT_MIN_INTERVAL_MS``: a receiver's downlink can collapse faster than the
    sender's uplink estimate would say anything.
    """

    def __init__(self, inner: Any, cap: Callable[[], int | None]) -> None:
        self._inner = inner
        self._cap = cap
        self.own_estimate: int | None = None
        """The wrapped estimator's last estimate (what aiortc alone would have sent)."""
        self.reported: int | None = None
        """The last value sent to the remote sender."""
        self._reported_at_ms: int | None = None

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        remb = self._inner.add(
            arrival_time_ms=arrival_time_ms,
            abs_send_time=abs_send_time,
            payload_size=payload_size,
            ssrc=ssrc,
        )
        cap = self._cap()
        if remb is not None:
            self.own_estimate, ssrcs = remb
            return self._report(_min_known(self.own_estimate, cap), ssrcs, arrival_time_ms)
        target = _min_known(self.own_estimate, cap)
        if target is None:
            return None
        if self._reported_at_ms is not None and (
            arrival_time_ms - self._reported_at_ms < CAP_REPORT_MIN_INTERVAL_MS
        ):
            return None
        if self.reported is not None and abs(target - self.reported) < (
            CAP_REPORT_CHANGE * self.reported
        ):
            return None
        return self._report(target, list(self._inner.ssrcs), arrival_time_ms)

    def _report(
        self, bitrate: int | None, ssrcs: list[int], now_ms: int
    ) -> tuple[int, list[int]] | None:
        if bitrate is None or not ssrcs:
            return None
        self.reported = bitrate
        self._reported_at_ms = now_ms
        return bitrate, ssrcs


def _min_known(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def cap_receive_estimate(receiver: Any, cap: Callable[[], int | None]) -> CappedBitrateEstimator:
    """Cap the REMB ``receiver`` (a video ``RTCRtpReceiver``) sends at ``cap()``.

    Returns the wrapper, whose ``own_estimate`` and ``reported`` say what happened.
    """
    inner = getattr(receiver, RECEIVER_BITRATE_ESTIMATOR_ATTR, None)
    if inner is None or not callable(getattr(inner, "add", None)) or not hasattr(inner, "ssrcs"):
        raise RuntimeError(
            f"RTCRtpReceiver has no {RECEIVER_BITRATE_ESTIMATOR_ATTR} estimator (audio "
            "receivers have none; otherwise aiortc changed: re-check "
            "signaling/aiortc_patches.py)"
        )
    capped = CappedBitrateEstimator(inner, cap)
    setattr(receiver, RECEIVER_BITRATE_ESTIMATOR_ATTR, capped)
    return capped
