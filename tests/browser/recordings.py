"""Small real WebM recordings (VP8 + Opus) made with PyAV, for the reviewer console tests.

The recorder writes the same kind of file: timestamps on the call's shared clock, so a
participant who joined 1.5 s in has a file whose first frame is at 1.5 s. Making them here
lets the console be tested on its own, with recordings of known start and length.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

WIDTH, HEIGHT, FPS = 320, 240, 15
SAMPLE_RATE, SAMPLES_PER_FRAME = 48_000, 960


def _video_frame(index: int, shade: int, first_pts: int) -> av.VideoFrame:
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    # A bar that moves every frame, so a decoder (and a person) can tell frames apart.
    luma = bytearray([shade]) * (WIDTH * HEIGHT)
    column = (index * 8) % WIDTH
    for row in range(HEIGHT):
        start = row * WIDTH + column
        luma[start : start + 8] = b"\xeb" * len(luma[start : start + 8])
    planes = frame.planes
    planes[0].update(_fit(bytes(luma), planes[0]))
    chroma = WIDTH // 2 * (HEIGHT // 2)
    planes[1].update(_fit(bytes([90]) * chroma, planes[1]))
    planes[2].update(_fit(bytes([160]) * chroma, planes[2]))
    frame.pts = first_pts + index
    frame.time_base = Fraction(1, FPS)
    return frame


def _fit(data: bytes, plane: av.video.plane.VideoPlane) -> bytes:
    """Rows padded to the plane's line size (PyAV may align it past the width)."""
    width = plane.width
    if plane.line_size == width:
        return data
    pad = b"\x00" * (plane.line_size - width)
    return b"".join(data[r * width : (r + 1) * width] + pad for r in range(plane.height))


def write_webm(path: Path, seconds: float, shade: int, start: float = 0.0) -> None:
    """``seconds`` of media whose first frame is at ``start`` s on the call clock."""
    container = av.open(str(path), "w", format="webm")
    try:
        video = container.add_stream("libvpx", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = container.add_stream("libopus", rate=SAMPLE_RATE)
        audio.layout = "mono"
        frames = int(seconds * FPS)
        for i in range(frames):
            for packet in video.encode(_video_frame(i, shade, round(start * FPS))):
                container.mux(packet)
        silence = bytes(2 * SAMPLES_PER_FRAME)
        for i in range(int(seconds * SAMPLE_RATE / SAMPLES_PER_FRAME)):
            chunk = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES_PER_FRAME)
            chunk.planes[0].update(silence)
            chunk.sample_rate = SAMPLE_RATE
            chunk.pts = round(start * SAMPLE_RATE) + i * SAMPLES_PER_FRAME
            chunk.time_base = Fraction(1, SAMPLE_RATE)
            for packet in audio.encode(chunk):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)
    finally:
        container.close()
