"""Regular expressions that skip, in one character test, the places no match can start at.

The detector's rules start with a word edge and an alternation of dozens of words
(``\\b(?:talk|chat|continue|...)``). At each position of a window the regex engine tries
every word of the alternation, and at most positions none of them starts with the
character found there. A lookahead for the set of characters a match can start with,
put in front of the pattern, rejects those positions in one test and changes no match:
every match of the pattern starts with a character of that set.

The set is read off the parsed pattern (the standard library's ``re._parser``, the parser
``re.compile`` itself uses). Whatever the reading does not understand, or a pattern that
can match the empty string, leaves the pattern unguarded: slower, never different.
"""

from __future__ import annotations

import re

# The parser of the re module: private, but what re.compile runs on every pattern, and
# stable in shape since 3.11 (before that it was the public sre_parse). If a Python
# release changes it, _first_characters raises and patterns stay unguarded.
from re import _constants, _parser  # type: ignore[attr-defined]
from typing import Any, Final

# A character class wider than this (a negated class, \w, a wide range) is not a guard
# worth having.
_MAX_CHARACTERS: Final = 300


class _Unknown(Exception):
    """The pattern starts with something the guard does not read."""


def compile_guarded(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern)`` behind a lookahead for the characters its matches start with."""
    compiled = re.compile(pattern, flags)
    if flags & re.IGNORECASE:
        return compiled
    try:
        characters, can_be_empty = _first_characters(_parser.parse(pattern, flags))
    except (_Unknown, AttributeError, TypeError, ValueError):
        return compiled
    if can_be_empty or not characters or len(characters) > _MAX_CHARACTERS:
        return compiled
    guard = "".join(_class_member(character) for character in sorted(characters))
    return re.compile(f"(?=[{guard}])(?:{pattern})", flags)


def first_characters(pattern: str) -> frozenset[str] | None:
    """The characters a match of ``pattern`` can start with; None when not known."""
    try:
        characters, can_be_empty = _first_characters(_parser.parse(pattern, 0))
    except _Unknown:
        return None
    return None if can_be_empty else frozenset(characters)


def _class_member(character: str) -> str:
    return "\\" + character if character in "\\]^-[" else character


def _first_characters(items: Any) -> tuple[set[str], bool]:
    """The first characters of a sequence of parsed items, and whether it can match empty."""
    characters: set[str] = set()
    for op, argument in items:
        if op is _constants.LITERAL:
            characters.add(chr(argument))
            return characters, False
        if op in (_constants.AT, _constants.ASSERT, _constants.ASSERT_NOT):
            continue  # zero width: the next item consumes the first character
        if op is _constants.IN:
            characters |= _class_characters(argument)
            return characters, False
        if op is _constants.SUBPATTERN:
            _group, add_flags, _del_flags, body = argument
            if add_flags & _constants.SRE_FLAG_IGNORECASE:
                raise _Unknown("case-insensitive group")
            inner, can_be_empty = _first_characters(body)
        elif op is _constants.ATOMIC_GROUP:
            inner, can_be_empty = _first_characters(argument)
        elif op is _constants.BRANCH:
            inner, can_be_empty = set(), False
            for alternative in argument[1]:
                alternative_characters, alternative_empty = _first_characters(alternative)
                inner |= alternative_characters
                can_be_empty = can_be_empty or alternative_empty
        elif op in (_constants.MAX_REPEAT, _constants.MIN_REPEAT, _constants.POSSESSIVE_REPEAT):
            minimum, _maximum, body = argument
            inner, can_be_empty = _first_characters(body)
            can_be_empty = can_be_empty or minimum == 0
        else:
            raise _Unknown(str(op))
        characters |= inner
        if not can_be_empty:
            return characters, False
    return characters, True


def _class_characters(members: Any) -> set[str]:
    characters: set[str] = set()
    for op, argument in members:
        if op is _constants.LITERAL:
            characters.add(chr(argument))
        elif op is _constants.RANGE:
            low, high = argument
            if high - low > _MAX_CHARACTERS:
                raise _Unknown("wide range")
            characters.update(chr(code) for code in range(low, high + 1))
        else:  # NEGATE, CATEGORY (\d, \w, \s): too wide or not a plain set
            raise _Unknown(str(op))
    return characters
