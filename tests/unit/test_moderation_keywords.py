"""The keyword scan, and the promise it makes: a rule run only in the windows around its
keywords finds exactly what it finds in the whole text."""

from __future__ import annotations

import re
from pathlib import Path
from random import Random

import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

from moderation import contact_details, invitations, payments
from moderation.evaluation import load
from moderation.keywords import Keywords, KeywordScan, Span, windows
from moderation.normalise import normalise

DATA = Path(__file__).resolve().parent / "contact_details_data"


def test_scan_finds_overlapping_and_prefix_keywords() -> None:
    scan = KeywordScan(
        {
            "apps": Keywords(anywhere=("whatsapp", "app")),
            "what": Keywords(anywhere=("what",)),
            "fee": Keywords(anywhere=("fee",)),
        }
    )
    found = scan.scan("whatsapp? coffee")
    assert found["apps"] == [(0, 8), (5, 8)]
    assert found["what"] == [(0, 4)]
    assert found["fee"] == [(13, 16)]


def test_word_keywords_need_their_edges() -> None:
    scan = KeywordScan({"id": Keywords(words=("id",)), "ta": Keywords(word_starts=("ta",))})
    found = scan.scan("video id: 7, data take")
    assert found["id"] == [(6, 8)]
    assert found["ta"] == [(18, 20)]
    assert scan.scan("videos") == {}


def test_an_empty_keyword_is_refused() -> None:
    with pytest.raises(ValueError, match="empty keyword"):
        KeywordScan({"broken": Keywords(anywhere=("",))})


def test_windows_merge_where_they_meet() -> None:
    assert windows([(10, 12), (20, 22), (80, 81)], 100, before=5, after=5) == [(5, 27), (75, 86)]
    assert windows([(0, 2)], 3, before=5, after=5) == [(0, 3)]


# --- windows change nothing -------------------------------------------------------------


def _windowed_rules() -> list[tuple[str, re.Pattern[str], int, int]]:
    rules = [
        (name, rule.pattern, rule.before, rule.after)
        for name, rule in invitations._RULES_READ.items()
    ]
    anchored = [*contact_details._OFF_PLATFORM_REQUESTS, contact_details._DIRECT_CONTACT_VERB]
    rules += [(rule.name, rule.pattern, rule.before, rule.after) for rule in anchored]
    rules.append(
        (
            "payment.service",
            payments._SERVICE_REQUEST,
            payments._SERVICE_BEFORE,
            payments._SERVICE_AFTER,
        )
    )
    return rules


_RULES = _windowed_rules()
_SCAN = contact_details._KEYWORD_SCAN
_SCAN_RULES: dict[str, Keywords] = {
    **contact_details._KEYWORDS,
    **invitations.KEYWORDS,
    **payments.KEYWORDS,
}


def _words_of(pattern: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:[ '-][^\W\d_]+)?", pattern)


# Pieces a message is made of: the rule's keywords, the words it spells out, and the
# digits, handles, domains and punctuation rules read around them.
_COMMON_PIECES = (
    "845 2291 0037", "661244", "@marta_ux", "pixelfox#4821", "x.com", "marta-design.co.uk",
    "https://", "www.", "/", ":", "=", "me", "my", "you", "your", "the", "on", "to", "a", "in",
    "-", "—", ".", ",", "?", "is", "id", "whatsapp", "pay",
)  # fmt: skip


# Labelled messages, whole and cut in two, hold real matches of most rules; the phrases
# after them match the rules no labelled message needs.
_MESSAGES = [record["text"] for record in load(DATA / "dev.jsonl")] + [
    "can we continue on email",
    "i'd rather not go through the platform",
    "we could exchange numbers",
    "call me on my mobile",
    "a quick phone call",
    "avoid paying the site's fees",
]
_MESSAGE_PIECES = [
    piece
    for text in _MESSAGES
    for piece in (text, text[: len(text) // 2], text[len(text) // 2 :])
    if piece
]


def _pieces(name: str, pattern: re.Pattern[str]) -> tuple[list[str], list[str]]:
    """Pieces to build texts from, and the labelled pieces the rule matches in."""
    keywords = _SCAN_RULES[name]
    matching = [piece for piece in _MESSAGE_PIECES if pattern.search(normalise(piece).text)]
    pieces = {
        *keywords.anywhere,
        *keywords.word_starts,
        *keywords.words,
        *_words_of(pattern.pattern),
        *_COMMON_PIECES,
        *_MESSAGE_PIECES[::7],
    }
    return sorted(pieces), matching


def _texts(pieces: list[str], matching: list[str]) -> st.SearchStrategy[str]:
    """Texts of pieces with gaps between them, each holding at least one match."""
    gaps = st.sampled_from(["", " ", " ", " ", "  ", "\n", ": ", ". "])
    others = st.lists(st.tuples(st.sampled_from(pieces), gaps), max_size=20)
    matches = st.lists(st.tuples(st.sampled_from(matching), gaps), min_size=1, max_size=4)
    return st.tuples(others, matches, st.randoms(use_true_random=False)).map(_shuffled_join)


def _shuffled_join(drawn: tuple[list[tuple[str, str]], list[tuple[str, str]], Random]) -> str:
    others, matches, random = drawn
    pieces = others + matches
    return "".join(piece + gap for piece, gap in random.sample(pieces, len(pieces)))


def _spans_in_windows(
    text: str, name: str, pattern: re.Pattern[str], before: int, after: int
) -> set[Span]:
    found = _SCAN.scan(text).get(name, [])
    return {
        match.span()
        for low, high in windows(found, len(text), before, after)
        for match in pattern.finditer(text, low, high)
    }


@pytest.mark.parametrize(("name", "pattern", "before", "after"), _RULES, ids=[r[0] for r in _RULES])
def test_rules_find_the_same_in_their_windows_as_in_the_whole_text(
    name: str, pattern: re.Pattern[str], before: int, after: int
) -> None:
    matched = 0

    @settings(max_examples=100, deadline=None, database=None, derandomize=True)
    @given(_texts(*_pieces(name, pattern)))
    def check(text: str) -> None:
        nonlocal matched
        normalised = normalise(text).text
        whole = {match.span() for match in pattern.finditer(normalised)}
        # Steer the search towards texts the rule matches in many places.
        target(float(len(whole)))
        matched += bool(whole)
        assert _spans_in_windows(normalised, name, pattern, before, after) == whole

    check()
    # The check means something only if the rule matched in the texts it was given.
    assert matched >= 20, f"{name} matched in {matched} generated texts only"
