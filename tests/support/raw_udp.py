"""What an abusive participant sends a call's media port from a plain UDP socket: STUN
checks signed with the leg's own ICE credentials, and RTP-looking junk."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import struct
import time

import aioice.ice
import aioice.stun as stun

from signaling.media_bridge import CallMediaBridge


def ice_credentials(sdp: str) -> tuple[str, str]:
    """The ``(ice-ufrag, ice-pwd)`` of an offer or answer."""
    ufrag = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.MULTILINE)
    pwd = re.search(r"^a=ice-pwd:(\S+)", sdp, re.MULTILINE)
    assert ufrag and pwd
    return ufrag.group(1), pwd.group(1)


def binding_request(username: str, password: str) -> bytes:
    """A connectivity check signed with the leg's ICE password, as a browser sends one."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1_853_824_767
    request.attributes["ICE-CONTROLLING"] = secrets.randbits(64)
    request.add_message_integrity(password.encode("utf8"))
    request.add_fingerprint()
    return bytes(request)


def rtp_looking(seq: int, ssrc: int = 0x1234_5678) -> bytes:
    """A plausible RTP packet (V=2, PT 96) with a junk payload: SRTP will refuse it."""
    return struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, seq * 3000, ssrc) + os.urandom(1100)


def blast(port: int, count: int) -> float:
    """Send ``count`` RTP-looking datagrams to ``port`` as fast as possible; answer seconds."""
    packets = [rtp_looking(n) for n in range(512)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        started = time.monotonic()
        for n in range(count):
            with contextlib.suppress(BlockingIOError):
                udp.sendto(packets[n % len(packets)], ("127.0.0.1", port))
        return time.monotonic() - started


def leg_connection(bridge: CallMediaBridge, participant_id: str) -> aioice.ice.Connection:
    """The server's aioice connection of a participant's leg (one per leg: bundled)."""
    leg = bridge._participants[participant_id].leg
    assert leg is not None
    (transport,) = {t.receiver.transport.transport for t in leg.pc.getTransceivers()}
    return transport._connection  # type: ignore[no-any-return]
