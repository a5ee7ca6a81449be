"""`make bench`: run every benchmark in turn; each prints its own figures and ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS: list[list[str]] = [
    # Encoded-frame bridge vs aiortc's stock MediaRelay (decode + re-encode), same run;
    # also the bridge with the recorder attached, to show what recording adds.
    ["bench_bridge.py"],
    # The recorder alone: loop-side cost per frame, CPU per call-second, bitrate written.
    ["bench_recorder.py", "--seconds", "30"],
    # What a metrics scrape costs the event loop, by number of live calls.
    ["bench_metrics.py"],
    # Junk datagrams and forged ICE checks against one call, the patches on and off.
    ["bench_media_abuse.py"],
    # The contact-details detector: recall and false positives per kind on the development
    # and held-out sets, time per message p50/p99 (also for 2,000-character messages).
    ["bench_contact_details.py"],
    # Receiver-driven bitrate on and off, the buyer's downlink shaped to 450 kbps.
    ["bench_bitrate.py"],
    # The same with real Chromium, the buyer relayed by coturn over TCP at 400 kbps.
    ["bench_browser_bitrate.py"],
    # The whole service (HTTP, WebSocket, media workers, recording) at 20 calls, with 1
    # and with 2 media workers: CPU per call, delivery, loop lag, time to first frame.
    ["bench_capacity.py"],
]


def main() -> int:
    failed = 0
    for script, *args in BENCHMARKS:
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        result = subprocess.run([sys.executable, str(HERE / script), *args], check=False)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
