"""Just enough bitstream knowledge to mux encoded frames without re-encoding them.

Everything here runs on the recorder's worker thread. The only encoding the recorder ever
does is one black keyframe per (codec, resolution), cached for the life of the process.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from typing import Final

import av
import av.error

# One 20 ms CELT-only, full-band, mono Opus frame that decodes to digital silence (the
# frame WebRTC stacks use for comfort silence). Fills audio gaps so players that run their
# audio clock off decoded samples (Chromium) keep audio and video in sync.
OPUS_SILENCE_20MS: Final = b"\xf8\xff\xfe"
OPUS_SILENCE_SAMPLES: Final = 960
OPUS_SAMPLE_RATE: Final = 48_000

_VP8_START_CODE: Final = b"\x9d\x01\x2a"
_H264_NAL_SPS: Final = 7


class BitstreamError(ValueError):
    """An encoded frame is not what its codec name says."""


def opus_packet_samples(packet: bytes) -> int:
    """Duration of an Opus packet in 48 kHz samples (RFC 6716 section 3.1)."""
    if not packet:
        return 0
    toc = packet[0]
    config = toc >> 3
    if config < 12:  # SILK-only: 10, 20, 40, 60 ms
        frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:  # hybrid: 10, 20 ms
        frame = (480, 960)[config % 2]
    else:  # CELT-only: 2.5, 5, 10, 20 ms
        frame = (120, 240, 480, 960)[config % 4]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            return 0
        frames = packet[1] & 0x3F
    return frame * frames


def vp8_keyframe_size(frame: bytes) -> tuple[int, int]:
    """Width and height from a VP8 keyframe header (RFC 6386 section 9.1)."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != _VP8_START_CODE:
        raise BitstreamError("not a VP8 keyframe")
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    if not width or not height:
        raise BitstreamError("VP8 keyframe with a zero dimension")
    return width, height


def h264_nal_units(frame: bytes) -> list[bytes]:
    """Split an Annex-B access unit into NAL units (start codes removed)."""
    units: list[bytes] = []
    start = -1
    i = 0
    end = len(frame)
    while i + 3 <= end:
        if frame[i] == 0 and frame[i + 1] == 0 and frame[i + 2] == 1:
            if start >= 0:
                units.append(frame[start:i].rstrip(b"\x00"))
            i += 3
            start = i
        else:
            i += 1
    if start >= 0:
        units.append(frame[start:])
    return [unit for unit in units if unit]


def h264_sps(frame: bytes) -> bytes | None:
    for unit in h264_nal_units(frame):
        if unit[0] & 0x1F == _H264_NAL_SPS:
            return unit
    return None


_h264_size_cache: dict[bytes, tuple[int, int]] = {}
_h264_size_lock = threading.Lock()


def h264_keyframe_size(frame: bytes) -> tuple[int, int]:
    """Width and height of an Annex-B H264 keyframe carrying its SPS.

    Decodes the keyframe once per distinct SPS (resolution changes are rare) instead of
    parsing the SPS by hand: cropping, VUI and profile quirks are the decoder's job.
    """
    sps = h264_sps(frame)
    if sps is None:
        raise BitstreamError("H264 keyframe without an SPS")
    with _h264_size_lock:
        cached = _h264_size_cache.get(sps)
    if cached is not None:
        return cached
    decoder = av.CodecContext.create("h264", "r")
    try:
        frames = decoder.decode(av.Packet(frame)) + decoder.decode(None)
    except av.error.FFmpegError as exc:
        raise BitstreamError(f"H264 keyframe does not decode: {exc}") from exc
    if not frames:
        raise BitstreamError("H264 keyframe decoded to no picture")
    size = (frames[0].width, frames[0].height)
    with _h264_size_lock:
        _h264_size_cache[sps] = size
    return size


_black_cache: dict[tuple[str, int, int], bytes] = {}
_black_lock = threading.Lock()


def black_keyframe(codec: str, width: int, height: int) -> bytes:
    """A keyframe showing black at ``width`` x ``height``: VP8 or Annex-B H264.

    Encoded once per (codec, size) and cached; only ever called off the event loop.
    """
    key = (codec, width, height)
    with _black_lock:
        cached = _black_cache.get(key)
    if cached is not None:
        return cached
    data = _encode_black(codec, width, height)
    with _black_lock:
        _black_cache.setdefault(key, data)
        return _black_cache[key]


def _encode_black(codec: str, width: int, height: int) -> bytes:
    if codec == "VP8":
        encoder = av.CodecContext.create("libvpx", "w")
    elif codec == "H264":
        encoder = av.CodecContext.create("libx264", "w")
        # Constrained baseline like the WebRTC streams it is spliced into; no global
        # header, so SPS/PPS travel in-band in the keyframe itself (Annex-B).
        encoder.options = {"profile": "baseline", "preset": "ultrafast", "tune": "zerolatency"}
    else:
        raise BitstreamError(f"no black keyframe for codec {codec!r}")
    encoder.width = width
    encoder.height = height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, 30)
    picture = av.VideoFrame(width, height, "yuv420p")
    # Limited-range YUV black: luma 16, chroma neutral 128.
    for plane, value in zip(picture.planes, (16, 128, 128), strict=True):
        plane.update(bytes([value]) * plane.buffer_size)
    picture.pts = 0
    packets = encoder.encode(picture) + encoder.encode(None)
    if not packets or not packets[0].is_keyframe:
        raise BitstreamError(f"{codec} encoder returned no keyframe")
    return bytes(packets[0])
