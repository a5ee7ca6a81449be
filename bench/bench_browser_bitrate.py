"""Receiver-driven bitrate with real Chromium, on and off in the same run.

Two headless Chromium browsers call each other through the real service on loopback.
The seller's camera is a noisy 640x480 clip (``--use-file-for-fake-video-capture``, made
by ffmpeg), so Chromium's own VP8 encoder spends whatever bitrate it is allowed; the
seller reaches the server directly. The buyer's browser may only use TURN over TCP
(``--webrtc-ip-handling-policy=disable_non_proxied_udp``) through a real coturn whose
``max-bps`` limits each of its sessions: the buyer's downlink is the constrained path.

Printed per run (``INBOXCALL_RECEIVER_DRIVEN_BITRATE`` on, then off), second by
second from the pages' own ``getStats``: the seller's video bitrate sent and the
browser's available outgoing bitrate (its estimate, REMB included); when the seller's
video first fitted the limit; the buyer's video freezes (Chromium's ``freezeCount`` /
``totalFreezesDuration``) over the whole run and after the adaptation, frames decoded,
and the buyer's audio concealment (``concealedSamples`` / ``totalSamplesReceived``);
and whether the call screen said video was paused.

    .venv/bin/python bench/bench_browser_bitrate.py [--limit-kbps 400] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from playwright.async_api import Page, async_playwright

from tests.browser.calls import accept_from_banner, expect_media_flowing, start_call
from tests.browser.support import CHROMIUM_FLAGS, RELAY_ONLY_FLAG, People, start_service
from tests.support.tools import require_tool
from tests.support.turn_server import running_turn_server

# The seller's bitrate "fits" once it stays at or below the limit less this share (RTP and
# TURN framing, audio) for 3 s.
FIT_SHARE = 0.85

SENDER_STATS = """async () => {
  const pc = window.inboxcall?.call?.pc;
  if (!pc) return null;
  const out = { videoBytesSent: 0, availableOutgoingBitrate: null };
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") out.videoBytesSent += s.bytesSent ?? 0;
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded"
        && s.availableOutgoingBitrate !== undefined) {
      out.availableOutgoingBitrate = s.availableOutgoingBitrate;
    }
  });
  return out;
}"""

RECEIVER_STATS = """async () => {
  const pc = window.inboxcall?.call?.pc;
  if (!pc) return null;
  const out = { freezeCount: 0, totalFreezesDuration: 0, framesDecoded: 0,
                concealedSamples: 0, totalSamplesReceived: 0,
                paused: !!document.querySelector(".video-paused") };
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") {
      out.freezeCount += s.freezeCount ?? 0;
      out.totalFreezesDuration += s.totalFreezesDuration ?? 0;
      out.framesDecoded += s.framesDecoded ?? 0;
    }
    if (s.kind === "audio") {
      out.concealedSamples += s.concealedSamples ?? 0;
      out.totalSamplesReceived += s.totalSamplesReceived ?? 0;
    }
  });
  return out;
}"""


@dataclass
class Sample:
    sender: dict[str, Any]
    receiver: dict[str, Any]


@dataclass
class RunFigures:
    receiver_driven: bool
    limit_kbps: int
    samples: list[Sample] = field(default_factory=list)

    def sent_kbps(self) -> list[float]:
        bytes_sent = [s.sender["videoBytesSent"] for s in self.samples]
        return [(b - a) * 8 / 1000 for a, b in itertools.pairwise(bytes_sent)]

    def estimate_kbps(self) -> list[float]:
        return [(s.sender["availableOutgoingBitrate"] or 0) / 1000 for s in self.samples[1:]]

    def concealed_share(self) -> list[float]:
        """Per second: the share of the buyer's audio samples that were concealed."""
        rows = [
            (s.receiver["concealedSamples"], s.receiver["totalSamplesReceived"])
            for s in self.samples
        ]
        return [
            (c1 - c0) / (t1 - t0) if t1 > t0 else 1.0
            for (c0, t0), (c1, t1) in itertools.pairwise(rows)
        ]

    def fitted_after_s(self) -> int | None:
        sent = self.sent_kbps()
        for start in range(len(sent) - 2):
            if all(v <= self.limit_kbps * FIT_SHARE for v in sent[start : start + 3]):
                return start + 1
        return None

    def receiver_delta(self, key: str, start: int = 0) -> float:
        return float(self.samples[-1].receiver[key] - self.samples[start].receiver[key])


def make_noisy_clip(directory: Path) -> Path:
    """A 640x480 30 fps clip that compresses badly: the encoder spends its whole budget."""
    ffmpeg = require_tool("ffmpeg")
    path = directory / "noisy.y4m"
    subprocess.run(
        [
            ffmpeg, "-v", "error", "-f", "lavfi",
            "-i", "testsrc2=size=640x480:rate=30,noise=alls=40:allf=t",
            "-t", "4", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


async def sample(sender: Page, receiver: Page) -> Sample:
    return Sample(await sender.evaluate(SENDER_STATS), await receiver.evaluate(RECEIVER_STATS))


async def run(
    receiver_driven: bool, limit_kbps: int, seconds: int, clip: Path, root: Path
) -> RunFigures:
    chromium = require_tool("chromium")
    figures = RunFigures(receiver_driven, limit_kbps)
    async with running_turn_server(max_bps=limit_kbps * 1000 // 8) as coturn:
        service = await start_service(
            root / f"service-{receiver_driven}",
            turn_urls=coturn.tcp_url,
            turn_secret=coturn.secret,
            receiver_driven_bitrate=receiver_driven,
        )
        try:
            async with async_playwright() as playwright:
                seller_browser = await playwright.chromium.launch(
                    executable_path=chromium,
                    args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={clip}"],
                )
                buyer_browser = await playwright.chromium.launch(
                    executable_path=chromium, args=[*CHROMIUM_FLAGS, RELAY_ONLY_FLAG]
                )
                sellers, buyers = People(seller_browser), People(buyer_browser)
                try:
                    buyer = await buyers.sign_in(service, "buyer-vera")
                    seller = await sellers.sign_in(service, "seller-sam")
                    await start_call(seller)
                    await accept_from_banner(buyer)
                    await expect_media_flowing(buyer)
                    for _ in range(seconds + 1):
                        figures.samples.append(await sample(seller, buyer))
                        await asyncio.sleep(1.0)
                finally:
                    await sellers.close()
                    await buyers.close()
                    await seller_browser.close()
                    await buyer_browser.close()
        finally:
            await service.close()
    return figures


def _row(values: list[float]) -> str:
    return " ".join(f"{v:5.0f}" for v in values)


def report(f: RunFigures) -> None:
    name = "adaptation on " if f.receiver_driven else "adaptation off"
    print(f"--- {name} (buyer's TURN session limited to {f.limit_kbps} kbit/s each way)")
    print(f"  seller video kbps/s     : {_row(f.sent_kbps())}")
    print(f"  seller's estimate kbps  : {_row(f.estimate_kbps())}")
    fitted = f.fitted_after_s()
    print(f"  buyer audio concealed % : {_row([100 * v for v in f.concealed_share()])}")
    print(f"  video fitted after      : {'never' if fitted is None else f'{fitted} s'}")
    seconds = len(f.samples) - 1
    print(
        f"  buyer video (whole {seconds} s): {f.receiver_delta('freezeCount'):.0f} freezes, "
        f"{f.receiver_delta('totalFreezesDuration'):.1f} s frozen, "
        f"{f.receiver_delta('framesDecoded'):.0f} frames decoded"
    )
    if fitted is not None:
        print(
            f"  buyer video after fit   : {f.receiver_delta('freezeCount', fitted):.0f} freezes, "
            f"{f.receiver_delta('totalFreezesDuration', fitted):.1f} s frozen, "
            f"{f.receiver_delta('framesDecoded', fitted):.0f} frames decoded"
        )
    received = f.receiver_delta("totalSamplesReceived")
    concealed = f.receiver_delta("concealedSamples")
    share = concealed / received if received else 0.0
    print(f"  buyer audio concealed   : {share:.1%} of samples ({concealed / 48000:.1f} s)")
    paused = [i for i, s in enumerate(f.samples) if s.receiver["paused"]]
    print(f"  video paused shown      : {f'{len(paused)} s' if paused else 'never'}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit-kbps", type=int, default=400)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="inboxcall-bench-browser-bitrate-"))
    try:
        clip = make_noisy_clip(root)
        for receiver_driven in (True, False):
            report(await run(receiver_driven, args.limit_kbps, args.seconds, clip, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
