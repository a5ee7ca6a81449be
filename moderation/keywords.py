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


def _is_word_character(character: str) -> bool:
    return character.isascii() and character.isalpha()


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
                keyword, _Keyword(len(keyword), tuple(anywhere), tuple(word_starts), tuple(words))
            )
        self._automaton.make_automaton()
        self.rules: Final = tuple(rules)

    def scan(self, text: str) -> dict[str, list[Span]]:
        """For each rule with a keyword in ``text``, the keywords' spans, in order.

        Where keywords of one rule start at the same place, the longest one stands for them.
        """
        hits: dict[str, list[tuple[int, int]]] = {}
        length = len(text)
        keyword: _Keyword
        for last, keyword in self._automaton.iter(text):
            end = last + 1
            start = end - keyword.length
            rules = keyword.anywhere
            if (keyword.word_starts or keyword.words) and (
                start == 0 or not _is_word_character(text[start - 1])
            ):
                rules += keyword.word_starts
                if end == length or not _is_word_character(text[end]):
                    rules += keyword.words
            for rule in rules:
                # Negated ends sort the longest keyword at one start first.
                hits.setdefault(rule, []).append((start, -end))
        found: dict[str, list[Span]] = {}
        for rule, spans in hits.items():
            spans.sort()
            kept: list[Span] = []
            for start, negated_end in spans:
                if not kept or kept[-1][0] != start:
                    kept.append((start, -negated_end))
            found[rule] = kept
        return found


@dataclass(frozen=True, slots=True)
class _Keyword:
    length: int
    anywhere: tuple[str, ...]
    word_starts: tuple[str, ...]
    words: tuple[str, ...]


def windows(spans: Iterable[Span], length: int, before: int, after: int) -> list[Span]:
    """The spans widened by ``before`` and ``after`` characters, merged where they meet."""
    merged: list[Span] = []
    for start, end in spans:
        low, high = max(0, start - before), min(length, end + after)
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged
