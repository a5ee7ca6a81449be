"""Receiver-driven bitrate, on and off in the same run: a call whose buyer's downlink is
limited by a UDP shaper on loopback (``tests/support/bitrate_scenario.py``).

The seller's pre-encoded video follows the REMB the bridge sends it (as a browser's
encoder does); the buyer is an aiortc peer with aiortc's own estimator and REMB. Printed
per run: the seller's video bitrate and the REMB it was told, second by second; when
its video first fitted the limit; the buyer's video freezes (Chromium's definition, over
decodable frames) and decodable frames; the buyer's audio frames missing (what a browser
would conceal) and its longest gap; datagrams the shaper dropped; video-paused notices.

    .venv/bin/python bench/bench_bitrate.py [--limit-kbps 450] [--seconds 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signaling import aiortc_patches
from tests.support.bitrate_scenario import ScenarioFigures, run_scenario


def _row(values: list[float]) -> str:
    return " ".join(f"{v:5.0f}" for v in values)


def report(f: ScenarioFigures, seconds: int) -> None:
    name = "adaptation on " if f.receiver_driven else "adaptation off"
    print(f"--- {name} (buyer's downlink limited to {f.limit_bps / 1000:.0f} kbps)")
    print(f"  seller video kbps/s : {_row(f.sent_kbps)}")
    print(f"  REMB to seller kbps : {_row(f.remb_kbps)}")
    adapted = "never" if f.adapted_after_s is None else f"{f.adapted_after_s:.0f} s"
    print(f"  video fitted after  : {adapted}")
    whole = f.freezes_whole
    print(
        f"  buyer video         : {f.video_frames_decodable} decodable frames after adaptation; "
        f"over the whole {seconds} s: {whole.count} freezes, {whole.total_s:.1f} s frozen, "
        f"longest {whole.longest_s:.1f} s"
    )
    print(
        f"  buyer audio         : {f.audio_frames_missing} of {f.audio_frames_expected} frames "
        f"missing ({f.audio_concealed_s:.1f} s concealed), "
        f"longest gap {f.audio_longest_gap_s:.2f} s"
    )
    print(f"  shaper drops        : {f.shaper_drops} datagrams; notices: {f.notices or 'none'}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit-kbps", type=int, default=450)
    parser.add_argument("--seconds", type=int, default=16)
    args = parser.parse_args()
    aiortc_patches.limit_ice_host_addresses(["127.0.0.1"])
    for receiver_driven in (True, False):
        figures = await run_scenario(
            receiver_driven=receiver_driven,
            limit_bps=args.limit_kbps * 1000,
            constrained_s=args.seconds,
        )
        report(figures, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
