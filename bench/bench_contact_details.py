"""The contact-details detector: recall and false positives per kind, and its speed.

Prints, for the development part (the one the detector is tuned on) and the held-out
part (written before the detector changed, never tuned on), recall per kind of contact
detail, false-positive rate per kind of hard negative, the same for messages split
across several messages of one sender, and the time per message at p50 and p99 over
every labelled message and over 2,000-character messages.

Targets on the held-out part: recall >= 95 %, false positives <= 1 %, p99 <= 2 ms for a
2,000-character message.

Standalone: ``.venv/bin/python bench/bench_contact_details.py [--part dev --show-errors]``;
errors are listed for the development part only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moderation.contact_details import find_contact_details
from moderation.evaluation import Figures, evaluate_messages, evaluate_split, load

DATA = Path(__file__).resolve().parents[1] / "tests" / "unit" / "contact_details_data"
LONG_MESSAGE_CHARS = 2000


def print_figures(title: str, figures: Figures, show_errors: bool) -> None:
    positives = sum(figures.positives.values())
    negatives = sum(figures.negatives.values())
    print(
        f"{title}: recall {figures.recall:.1%} ({sum(figures.found.values())}/{positives}), "
        f"false positives {figures.false_positive_rate:.1%} "
        f"({sum(figures.flagged.values())}/{negatives})"
    )
    for kind, total in sorted(figures.positives.items()):
        print(
            f"    recall  {kind:<22} {figures.found[kind] / total:6.1%}"
            f"  ({figures.found[kind]}/{total})"
        )
    for category, total in sorted(figures.negatives.items()):
        flagged = figures.flagged[category]
        print(f"    FP      {category:<22} {flagged / total:6.1%}  ({flagged}/{total})")
    if show_errors:
        for text in figures.missed_texts:
            print(f"    MISSED  {text!r}")
        for text in figures.flagged_texts:
            print(f"    FLAGGED {text!r}")


def long_messages(texts: list[str]) -> list[str]:
    """2,000-character messages made of labelled messages, as a long brief would read."""
    messages: list[str] = []
    for offset in range(0, len(texts), 7):
        pieces: list[str] = []
        index = offset
        while sum(len(piece) + 1 for piece in pieces) < LONG_MESSAGE_CHARS:
            pieces.append(texts[index % len(texts)])
            index += 1
        messages.append(" ".join(pieces)[:LONG_MESSAGE_CHARS])
    return messages


def timings_ms(texts: list[str], repeats: int) -> tuple[float, float]:
    samples: list[float] = []
    for _ in range(repeats):
        for text in texts:
            started = time.perf_counter()
            find_contact_details(text)
            samples.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(samples, n=100)
    return quantiles[49], quantiles[98]


def cpu_timings_ms(texts: list[str], repeats: int) -> tuple[float, float]:
    """CPU time of this thread, the best of ``repeats`` per message: on a machine shared
    with other work, wall-clock percentiles measure the other work's bursts as well."""
    samples: list[float] = []
    for text in texts:
        best = float("inf")
        for _ in range(repeats):
            started = time.thread_time()
            find_contact_details(text)
            best = min(best, time.thread_time() - started)
        samples.append(best * 1000)
    quantiles = statistics.quantiles(samples, n=100)
    return quantiles[49], quantiles[98]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-errors", action="store_true", help="list misses and false hits")
    parser.add_argument(
        "--part",
        choices=("dev", "heldout", "both"),
        default="both",
        help="which labelled part to score; tune with --part dev only",
    )
    args = parser.parse_args()
    if args.show_errors and args.part != "dev":
        # Reading the held-out misses is tuning on them; only the dev part lists errors.
        parser.error("--show-errors needs --part dev: the held-out part is never tuned on")
    parts = ("dev", "heldout") if args.part == "both" else (args.part,)
    texts: list[str] = []
    for part in parts:
        records = load(DATA / f"{part}.jsonl")
        texts.extend(record["text"] for record in records)
        print_figures(f"{part} messages", evaluate_messages(records), args.show_errors)
        split = load(DATA / f"{part}_split.jsonl")
        print_figures(f"{part} split across messages", evaluate_split(split), args.show_errors)
    find_contact_details("warm-up: +44 7911 123456")
    p50, p99 = timings_ms(texts, repeats=3)
    print(f"time per labelled message ({len(texts)}): p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    long = long_messages(texts)
    p50, p99 = timings_ms(long, repeats=3)
    print(
        f"time per {LONG_MESSAGE_CHARS}-character message ({len(long)}):"
        f" p50 {p50:.3f} ms, p99 {p99:.3f} ms"
    )
    p50, p99 = cpu_timings_ms(long, repeats=5)
    print(
        f"CPU time per {LONG_MESSAGE_CHARS}-character message, best of 5 each:"
        f" p50 {p50:.3f} ms, p99 {p99:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
