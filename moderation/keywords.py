"""One scan of a message for the keywords of many rules: where each rule is worth running.

A detector rule run over a whole 2,000-character message costs the regex engine a try at
every position, and there are dozens of rules. Every match of a rule contains one of a
few literal strings (its keywords: "whatsapp", "fuera", "#"), so one combined scan finds
all keywords of all rules at once, and each rule then runs only in small windows around
its own keywords. The windows are wider than the longest match a rule can make around a
keyword, so a rule finds in its windows exactly what it would find in the whole text;
a unit test checks that on generated texts.

A keyword written in ``words`` or ``word_starts`` counts only where no ASCII letter comes
just before it (and, for ``words``, just after it). That test is weaker than the ``\\b``
or ``(?<![a-z0-9])`` of the rules (which also see digits, accented letters and ``_``),
so it keeps every position a rule could match at.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import ahocorasick

Span = tuple[int, int]

_Trie = dict[str, "_Trie"]


def trie_pattern(words: Iterable[str]) -> str:
    """One regular expression for many words, as a trie: the engine never tries a word
    whose first letters already failed, which an alternation of 300 words would. At one
    position it takes the longest word."""
    trie: _Trie = {}
    for word in words:
        node = trie
        for character in word:
            node = node.setdefault(character, {})
        node[""] = {}

    def pattern(node: _Trie) -> str:
        ends = "" in node
        branches = [
            re.escape(character) + pattern(child)
            for character, child in sorted(node.items())
            if character
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return pattern(trie)


@dataclass(frozen=True, slots=True)
class Keywords:
    """The literal strings one rule cannot match without."""

    anywhere: tuple[str, ...] = ()
    # Only where no ASCII letter comes just before.
    word_starts: tuple[str, ...] = ()
    # Only where no ASCII letter comes just before or just after.
    words: tuple[str, ...] = ()


class KeywordScan:
    """Finds the keywords of named rules in one pass over a text.

    The pass is an Aho-Corasick automaton (pyahocorasick): it reports every occurrence of
    every keyword, overlapping ones included, in one C loop over the text, where a regular
    expression would be searched again from each match.
    """

    def __init__(self, rules: Mapping[str, Keywords]) -> None:
        # keyword -> the rules that want it anywhere, at a word start, as a whole word
        wanted: dict[str, tuple[list[str], list[str], list[str]]] = defaultdict(
            lambda: ([], [], [])
        )
        for rule, keywords in rules.items():
            for keyword in keywords.anywhere:
                wanted[keyword][0].append(rule)
            for keyword in keywords.word_starts:
                wanted[keyword][1].append(rule)
            for keyword in keywords.words:
                wanted[keyword][2].append(rule)
        if any(not keyword for keyword in wanted):
            raise ValueError("an empty keyword would match everywhere")
        self._automaton = ahocorasick.Automaton()
        for keyword, (anywhere, word_starts, words) in wanted.items():
            self._automaton.add_word(
                keyword,
                _Keyword(
                    len(keyword),
                    tuple(anywhere),
                    tuple(anywhere + word_starts),
                    tuple(anywhere + word_starts + words),
                    bounded=bool(word_starts or words),
                ),
            )
        self._automaton.make_automaton()
        self.rules: Final = tuple(rules)

    def scan(self, text: str) -> dict[str, list[Span]]:
        """For each rule with a keyword in ``text``, the keywords' spans, in order.

        Where keywords of one rule start at the same place, the longest one stands for them.
        """
        # A digit-dense or chatty message has hundreds of keyword hits: the loop does no
        # more per hit than pick the rules (tuples made in __init__) and append the span.
        hits: dict[str, list[tuple[int, int]]] = {}
        length = len(text)
        keyword: _Keyword
        for last, keyword in self._automaton.iter(text):
            end = last + 1
            start = end - keyword.length
            if not keyword.bounded or (start and text[start - 1] in _ASCII_LETTERS):
                rules = keyword.anywhere
            elif end != length and text[end] in _ASCII_LETTERS:
                rules = keyword.at_word_start
            else:
                rules = keyword.as_word
            # Negated ends sort the longest keyword at one start first.
            span = (start, -end)
            for rule in rules:
                if (spans := hits.get(rule)) is None:
                    hits[rule] = [span]
                else:
                    spans.append(span)
        found: dict[str, list[Span]] = {}
        for rule, spans in hits.items():
            spans.sort()
            kept: list[Span] = []
            previous = -1
            for start, negated_end in spans:
                if start != previous:
                    kept.append((start, -negated_end))
                    previous = start
            found[rule] = kept
        return found


_ASCII_LETTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class _Keyword:
    length: int
    # The rules a hit counts for: with an ASCII letter just before it, with none before
    # but one just after, and with none on either side.
    anywhere: tuple[str, ...]
    at_word_start: tuple[str, ...]
    as_word: tuple[str, ...]
    # Whether any rule wants it at a word start or as a word: only then are edges read.
    bounded: bool


def windows(spans: Iterable[Span], length: int, before: int, after: int) -> list[Span]:
    """The spans widened by ``before`` and ``after`` characters, merged where they meet."""
    merged: list[Span] = []
    # Comparisons rather than max() and min(): called for every rule on every message,
    # over hundreds of spans on a long one.
    for start, end in spans:
        low = start - before if start > before else 0
        high = end + after if end + after < length else length
        if merged and low <= (last := merged[-1])[1]:
            if high > last[1]:
                merged[-1] = (last[0], high)
        else:
            merged.append((low, high))
    return merged
