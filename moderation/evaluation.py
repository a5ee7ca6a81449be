"""Measuring the contact-details detector on labelled messages (JSON lines).

Each line of a single-message file is ``{"text", "kind", "lang"}`` with ``kind`` one of
the detector's kinds for a message that shares contact details or asks to leave the
platform, or ``null`` with a ``"negative"`` category ("price", "code"...) for one that does
not. A split file holds ``{"messages": [...], "kind", "lang"}``: the last message either
completes a contact detail begun in the earlier ones (``kind`` set) or does not.

Recall counts a positive as found when the detector flags it at all (the flag, not the
kind label, is what sends a call to review); the false-positive rate is per negative.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moderation.contact_details import contains_contact_details
from moderation.split_messages import EarlierMessage, find_split_contact_details


@dataclass(slots=True)
class Figures:
    positives: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    negatives: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    missed_texts: list[str] = field(default_factory=list)
    flagged_texts: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        total = sum(self.positives.values())
        return sum(self.found.values()) / total if total else 1.0

    @property
    def false_positive_rate(self) -> float:
        total = sum(self.negatives.values())
        return sum(self.flagged.values()) / total if total else 0.0


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def evaluate_messages(records: Iterable[dict[str, Any]]) -> Figures:
    figures = Figures()
    for record in records:
        hit = contains_contact_details(record["text"])
        _count(figures, record, hit, record["text"])
    return figures


def evaluate_split(records: Iterable[dict[str, Any]]) -> Figures:
    """The last message of each sequence, judged with the earlier ones as its context."""
    figures = Figures()
    for record in records:
        *earlier, last = record["messages"]
        context = [EarlierMessage(str(index), text) for index, text in enumerate(earlier)]
        hit = contains_contact_details(last) or bool(find_split_contact_details(context, last))
        _count(figures, record, hit, " | ".join(record["messages"]))
    return figures


def _count(figures: Figures, record: dict[str, Any], hit: bool, shown: str) -> None:
    kind = record["kind"]
    if kind is not None:
        figures.positives[kind] += 1
        if hit:
            figures.found[kind] += 1
        else:
            figures.missed_texts.append(shown)
    else:
        category = record.get("negative", "split")
        figures.negatives[category] += 1
        if hit:
            figures.flagged[category] += 1
            figures.flagged_texts.append(shown)
