"""The first-character guard: it rejects positions faster and changes no match."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from moderation import contact_details, invitations, payments
from moderation.evaluation import load
from moderation.first_characters import (
    compile_guarded,
    factor_alternation,
    factor_alternations,
    first_characters,
    plain_pattern,
)
from moderation.normalise import normalise

DATA = Path(__file__).resolve().parent / "contact_details_data"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\b(?:talk|chat)\b", {"t", "c"}),
        (r"(?<![a-z])x?(?:ab|[0-2])", {"x", "a", "0", "1", "2"}),
        (r"(?:do|)n't", {"d", "n"}),
        (r"(?:a{0,2}b)+c", {"a", "b"}),
        (r"(?>foo|bar)", {"f", "b"}),
    ],
)
def test_first_characters_of_a_pattern(pattern: str, expected: set[str]) -> None:
    assert first_characters(pattern) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        r"[^.!?\n]+",  # a negated class: any character
        r"\w+",  # a category
        r"a?",  # can match the empty string
        r"(?i:abc)",  # case-insensitive
        r".x",  # any character
    ],
)
def test_patterns_it_does_not_read_stay_unguarded(pattern: str) -> None:
    assert first_characters(pattern) is None
    assert compile_guarded(pattern).pattern == pattern


def test_a_guarded_pattern_keeps_its_groups_and_class_metacharacters() -> None:
    guarded = compile_guarded(r"(?P<sign>[-\]^\\])(?P<digit>[0-9])")
    assert guarded.pattern.startswith("(?=[")
    match = guarded.search("x ^7 -3")
    assert match is not None
    assert match.group("sign", "digit") == ("^", "7")
    assert [m.group() for m in guarded.finditer(r"]1 \2 -3 a4")] == ["]1", "\\2", "-3"]


def _detector_patterns() -> list[re.Pattern[str]]:
    patterns = [pattern for _, pattern in contact_details._MESSENGER_PATTERNS]
    patterns += [rule.pattern for rule in contact_details._OFF_PLATFORM_REQUESTS]
    patterns += [rule.pattern for rule in invitations._RULES_READ.values()]
    patterns += [
        payments._SERVICE_REQUEST,
        contact_details._PHONE_RUN,
        contact_details._PHONE_CUE,
        contact_details._PHONE_NEGATIVE_CONTEXT,
        contact_details._EMAIL_DISGUISED,
        contact_details._CONTACT_DOMAIN_HOST,
        contact_details._CONTACT_PAGE_HOST,
        contact_details._MY_SITE,
        invitations._REFUSAL_READ,
    ]
    return patterns


@pytest.mark.parametrize("guarded", _detector_patterns(), ids=lambda pattern: pattern.pattern[:40])
def test_detector_patterns_match_the_same_with_and_without_the_guard(
    guarded: re.Pattern[str],
) -> None:
    plain = plain_pattern(guarded)
    assert plain is not guarded, "the detector's window patterns are all guarded"
    texts = [normalise(record["text"]).text for record in load(DATA / "dev.jsonl")]
    whole = " ".join(texts)
    for text in [*texts, whole]:
        assert [m.span() for m in guarded.finditer(text)] == [
            m.span() for m in plain.finditer(text)
        ]


@pytest.mark.parametrize(
    ("alternation", "factored"),
    [
        ("(?:talk|tell|chat|text)", "(?:t(?:alk|ell|ext)|chat)"),
        ("(?:me|us|you|u)", "(?:me|u(?:s|)|you)"),  # "us" still before "u"
        ("(?:wh?atsapp|wa|tg)", "(?:w(?:h?atsapp|a)|tg)"),
    ],
)
def test_an_alternation_is_grouped_by_first_letter_in_its_order(
    alternation: str, factored: str
) -> None:
    assert factor_alternation(alternation) == factored


@pytest.mark.parametrize("alternation", ["(?:[ab]c|d)", "(?:a?b|c)", "(?:\\bab|c)", "ab|c"])
def test_alternations_it_cannot_group_stay_as_they_are(alternation: str) -> None:
    assert factor_alternation(alternation) == alternation


def test_every_group_of_a_pattern_is_factored_and_matches_the_same() -> None:
    pattern = r"\b(?:add|ask|(?:xa|xb)z)\s(?P<who>(?:me|us|u))(?=[?.!,]|$)"
    factored = factor_alternations(pattern)
    # The outer group has a word that starts with a group: it stays, its insides do not.
    assert factored == r"\b(?:add|ask|(?:x(?:a|b))z)\s(?P<who>(?:me|u(?:s|)))(?=[?.!,]|$)"
    text = "add me, ask us. xbz u! add usual"
    assert [m.span() for m in re.finditer(factored, text)] == [
        m.span() for m in re.finditer(pattern, text)
    ]


@pytest.mark.parametrize(
    ("pattern", "shifted"),
    [
        (r"\bjoin (?:my|our)\b", r"j(?<!\wj)oin (?:my|our)\b"),
        (r"\b(?:talk|chat)\b", r"(?:t(?<!\wt)alk|c(?<!\wc)hat)\b"),
        (r"(?<![a-z0-9])(?P<app>wa|tg)\b", r"(?P<app>w(?<!(?:[a-z0-9])w)a|t(?<!(?:[a-z0-9])t)g)\b"),
        (r"(?<![A-Z])[13T][0-9]{3}", r"[13T](?<!(?:[A-Z])[13T])[0-9]{3}"),
        (r"\bfoo|(?<!x)bar", r"f(?<!\wf)oo|b(?<!(?:x)b)ar"),  # each alternative
    ],
)
def test_a_leading_edge_moves_past_the_first_character(pattern: str, shifted: str) -> None:
    assert compile_guarded(pattern).pattern == shifted


@pytest.mark.parametrize(
    "pattern",
    [
        r"\b(?:ab|cd)|\bef",  # an alternative that starts with a group: no fast loop
        r"\b(?:ab|[cd]e)",  # a class after "\b"
        r"\b(?:ab)?c",  # a quantified group
        r"\b(?:a|b|c|d|e|f|g|h)x",  # more first characters than the fast loop pays for
    ],
)
def test_patterns_whose_edge_cannot_move_keep_the_guard(pattern: str) -> None:
    assert compile_guarded(pattern).pattern.startswith("(?=[")


@pytest.mark.parametrize(
    "pattern",
    [
        r"\bjoin (?:my|our)\b",
        r"\b(?:talk|chat)s?\b",
        r"(?<![a-z0-9])(?P<app>wa|tg)\b",
        r"\bjoin\b|(?<![a-z])tg\b|\bjo",
    ],
)
def test_a_moved_edge_matches_the_same_everywhere(pattern: str) -> None:
    shifted = compile_guarded(pattern)
    plain = re.compile(pattern)
    text = "join my team, xjoin our; talks chat_chat 9wa tg wa- atg join our"
    for start in range(len(text)):
        for end in range(start, len(text) + 1, 3):
            assert [m.regs for m in shifted.finditer(text, start, end)] == [
                m.regs for m in plain.finditer(text, start, end)
            ]
