"""Which codecs a call may use, how to tell a keyframe, and what an offer asks for.

The bridge never decodes, so both legs of a call must carry the same codecs: Opus for
audio and VP8 for video, or H264 constrained baseline (packetization-mode 1) when the
first browser offers no VP8. The first leg decides; the second must match.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Final

from aiortc import RTCRtpSender
from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from signaling.media_errors import MediaNegotiationError

VP8: Final = "VP8"
H264: Final = "H264"
OPUS: Final = "opus"

VIDEO_CODEC_PREFERENCE: Final = (VP8, H264)
VIDEO_CLOCK_RATE: Final = 90000
OPUS_CLOCK_RATE: Final = 48000

_VP8_START_CODE: Final = b"\x9d\x01\x2a"
_H264_NAL_IDR: Final = 5


def vp8_is_keyframe(data: bytes) -> bool:
    """RFC 6386 section 9.1: P bit clear in the frame tag, then the start code."""
    return len(data) >= 10 and not data[0] & 0x01 and data[3:6] == _VP8_START_CODE


def h264_is_keyframe(data: bytes) -> bool:
    """An Annex-B access unit is a keyframe when it carries an IDR slice."""
    pos = data.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(data):
        if data[pos + 3] & 0x1F == _H264_NAL_IDR:
            return True
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return False


def is_keyframe(codec: str, data: bytes) -> bool:
    if codec == VP8:
        return vp8_is_keyframe(data)
    if codec == H264:
        return h264_is_keyframe(data)
    # Every Opus packet decodes on its own.
    return True


def _h264_is_constrained_baseline_mode1(parameters: dict[str, Any]) -> bool:
    if str(parameters.get("packetization-mode", "0")) != "1":
        return False
    try:
        profile, _level = aiortc_sdp.parse_h264_profile_level_id(
            str(parameters.get("profile-level-id", "42e01f"))
        )
    except ValueError:
        return False
    return bool(profile == aiortc_sdp.H264Profile.PROFILE_CONSTRAINED_BASELINE)


def codec_preferences(kind: str, codec: str) -> list[RTCRtpCodecCapability]:
    """Capabilities to pin a transceiver to ``codec`` (plus RTX for video).

    Taken from aiortc's own capability list, because ``setCodecPreferences`` and the
    answer's codec filter compare parameters for equality with it.
    """
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    chosen: list[RTCRtpCodecCapability] = []
    for capability in capabilities:
        name = capability.mimeType.split("/")[1]
        if name.lower() != codec.lower():
            continue
        if codec == H264 and not _h264_is_constrained_baseline_mode1(capability.parameters):
            continue
        chosen.append(capability)
        break
    if not chosen:
        raise RuntimeError(f"aiortc offers no {kind} codec {codec}")
    if kind == "video":
        chosen += [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
    return chosen


@dataclass(frozen=True, slots=True)
class OfferedMedia:
    """What one m-line of an offer carries, as far as the bridge cares."""

    kind: str
    mid: str | None
    codecs: frozenset[str]  # of VP8, H264 (constrained baseline, mode 1), opus
    primary_ssrc: int | None
    rtx_ssrcs: frozenset[int]


@dataclass(frozen=True, slots=True)
class OfferSummary:
    ice_ufrag: str
    ice_pwd: str
    audio: OfferedMedia
    video: OfferedMedia


def _offered_codecs(media: Any) -> frozenset[str]:
    names: set[str] = set()
    for codec in media.rtp.codecs:
        mime = codec.mimeType.lower()
        if mime == "audio/opus" and codec.clockRate == OPUS_CLOCK_RATE:
            names.add(OPUS)
        elif mime == "video/vp8" and codec.clockRate == VIDEO_CLOCK_RATE:
            names.add(VP8)
        elif (
            mime == "video/h264"
            and codec.clockRate == VIDEO_CLOCK_RATE
            and _h264_is_constrained_baseline_mode1(codec.parameters)
        ):
            names.add(H264)
    return frozenset(names)


def _offered_ssrcs(media: Any) -> tuple[int | None, frozenset[int]]:
    rtx: set[int] = set()
    primary: int | None = None
    for group in media.ssrc_group:
        if group.semantic == "FID" and len(group.items) == 2:
            primary = primary if primary is not None else int(group.items[0])
            rtx.add(int(group.items[1]))
    if primary is None:
        primary = next((s.ssrc for s in media.ssrc if s.ssrc not in rtx), None)
    return primary, frozenset(rtx)


def summarize_offer(offer_sdp: str, *, max_bytes: int) -> OfferSummary:
    """Validate an offer from a browser and say what it carries.

    Raises ``MediaNegotiationError`` for anything the bridge cannot answer: too large,
    unparsable, not exactly one audio and one video section, no ICE credentials or
    DTLS fingerprint, no rtcp-mux.
    """
    if not isinstance(offer_sdp, str):
        raise MediaNegotiationError("sdp_invalid", "the offer is not text")
    if len(offer_sdp.encode("utf-8", "surrogatepass")) > max_bytes:
        raise MediaNegotiationError("sdp_too_large", f"the offer exceeds {max_bytes} bytes")
    if not offer_sdp.startswith("v=0"):
        raise MediaNegotiationError("sdp_invalid", "the offer does not start with v=0")
    try:
        description = aiortc_sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:
        # aiortc's parser reports malformed input with asserts, KeyError, ValueError,
        # StopIteration and more; all of them mean the same thing here.
        raise MediaNegotiationError("sdp_invalid", "the offer could not be parsed") from exc

    audio = [m for m in description.media if m.kind == "audio"]
    video = [m for m in description.media if m.kind == "video"]
    if len(audio) != 1 or len(video) != 1 or len(description.media) != 2:
        raise MediaNegotiationError(
            "offer_media_sections",
            "the offer must have exactly one audio and one video section "
            "(use a recvonly transceiver when there is no camera or microphone)",
        )
    for media in description.media:
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise MediaNegotiationError("sdp_invalid", "the offer has no ICE credentials")
        if media.dtls is None or not media.dtls.fingerprints:
            raise MediaNegotiationError("sdp_invalid", "the offer has no DTLS fingerprint")
        if not media.rtcp_mux:
            raise MediaNegotiationError("sdp_invalid", "the offer does not use rtcp-mux")
    ice = audio[0].ice
    if ice is None or ice != video[0].ice:
        raise MediaNegotiationError("sdp_invalid", "the offer's sections must be bundled")

    def offered(media: Any) -> OfferedMedia:
        primary, rtx = _offered_ssrcs(media)
        return OfferedMedia(
            kind=media.kind,
            mid=media.rtp.muxId,
            codecs=_offered_codecs(media),
            primary_ssrc=primary,
            rtx_ssrcs=rtx,
        )

    return OfferSummary(
        ice_ufrag=str(ice.usernameFragment),
        ice_pwd=str(ice.password),
        audio=offered(audio[0]),
        video=offered(video[0]),
    )


_CANDIDATE_TYPES: Final = frozenset({"host", "srflx", "prflx", "relay"})
_MDNS_NAME: Final = re.compile(r"^[0-9a-zA-Z-]{1,64}\.local$")
MAX_CANDIDATE_LENGTH: Final = 1024


def validate_candidate_line(candidate: str) -> str:
    """Check a trickled ``candidate:...`` attribute and return it without the prefix.

    Raises ``ValueError`` saying what is wrong; the bridge wraps it.
    """
    if len(candidate) > MAX_CANDIDATE_LENGTH:
        raise ValueError("candidate is too long")
    text = candidate.strip()
    if text.startswith("a="):
        text = text[2:]
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    bits = text.split()
    if len(bits) < 8 or bits[6] != "typ":
        raise ValueError("candidate must read '<foundation> <component> <proto> ... typ <type>'")
    foundation, component, protocol, priority, address, port, _typ, kind = bits[:8]
    if not foundation.isalnum() or len(foundation) > 32:
        raise ValueError("bad candidate foundation")
    if not component.isdigit() or not 1 <= int(component) <= 256:
        raise ValueError("bad candidate component")
    if protocol.lower() not in ("udp", "tcp"):
        raise ValueError("candidate protocol must be udp or tcp")
    if not priority.isdigit() or int(priority) >= 1 << 32:
        raise ValueError("bad candidate priority")
    if not port.isdigit() or int(port) > 65535:
        raise ValueError("bad candidate port")
    if kind not in _CANDIDATE_TYPES:
        raise ValueError("bad candidate type")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if _MDNS_NAME.match(address):
            # DESIGN.md section 8, ICE scope: the server never resolves browsers' private
            # names (multicast into its own network); the browser's checks reach it anyway.
            raise ValueError(
                "mDNS (.local) candidates are not accepted; the server learns this "
                "address from the browser's own connectivity checks"
            ) from None
        raise ValueError("candidate address is not an IP address") from None
    if len(bits) % 2:
        raise ValueError("candidate extensions must come in name/value pairs")
    return text
