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
from collections.abc import Callable, Iterator

# The parser and compiler of the re module: private, but what re.compile runs on every
# pattern, and stable in shape since 3.11 (before that the public sre_parse and
# sre_compile). If a Python release changes them, _first_characters raises and patterns
# stay unguarded, or _engine_skips_ahead says no and they keep the lookahead guard.
from re import _compiler, _constants, _parser  # type: ignore[attr-defined]
from typing import Any, Final

# A character class wider than this (a negated class, \w, a wide range) is not a guard
# worth having.
_MAX_CHARACTERS: Final = 300


class _Unknown(Exception):
    """The pattern starts with something the guard does not read."""


def compile_guarded(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern)`` behind a lookahead for the characters its matches start with."""
    if flags & re.IGNORECASE:
        return re.compile(pattern, flags)
    pattern = factor_alternations(pattern)
    compiled = re.compile(pattern, flags)
    try:
        characters, can_be_empty = _first_characters(_parser.parse(pattern, flags))
    except (_Unknown, AttributeError, TypeError, ValueError):
        return compiled
    if can_be_empty or not characters or len(characters) > _MAX_CHARACTERS:
        return compiled
    if (
        len(characters) <= _SHIFT_MAX_CHARACTERS
        and (shifted := _shift_leading_assertion(pattern)) is not None
        and _engine_skips_ahead(shifted, flags)
    ):
        faster = re.compile(shifted, flags)
        _PLAIN[faster] = compiled
        return faster
    guard = "".join(_class_member(character) for character in sorted(characters))
    guarded = re.compile(f"(?=[{guard}])(?:{pattern})", flags)
    _PLAIN[guarded] = compiled
    return guarded


# Each pattern compile_guarded returned, with the pattern it was given (factored): what
# the tests check it against.
_PLAIN: Final[dict[re.Pattern[str], re.Pattern[str]]] = {}


def plain_pattern(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """The pattern :func:`compile_guarded` was given for ``pattern``, unguarded."""
    return _PLAIN.get(pattern, pattern)


# ---------------------------------------------------------------------------------------
# A word edge or lookbehind moved past the first character
#
# The engine has a fast loop of its own for a pattern whose first item is a literal, a
# class or an alternation of literals: it skips, in C, every position whose character
# cannot start a match. A pattern that starts with "\b" or a lookbehind (most rules) gets
# no such loop, and the lookahead guard above costs a call into the matcher per position.
# Moved after the first character, the assertion tests the same characters:
#
# - before a word character x, "\b" holds where no word character comes before it, which
#   after x is "x(?<!\wx)";
# - a lookbehind "(?<!L)" before the character x holds where "(?<!(?:L)x)" holds after it
#   (the same for "(?<=L)"), x being the character just consumed.
#
# So "\b(?:talk|chat)" becomes "(?:t(?<!\wt)alk|c(?<!\wc)hat)", which matches exactly
# what it did, at the same places, with the same groups.


# Measured on the detector's rules: with more first characters than this, most positions
# of a message hold one, and the lookahead guard (whose "\\b" then fails at once inside a
# word) is the faster of the two.
_SHIFT_MAX_CHARACTERS: Final = 7


def _engine_skips_ahead(pattern: str, flags: int) -> bool:
    """Whether the engine finds a literal prefix or a first-character set in ``pattern``."""
    try:
        parsed = _parser.parse(pattern, flags)
        prefix, _skip, _whole = _compiler._get_literal_prefix(parsed, flags)
        return bool(prefix) or _compiler._get_charset_prefix(parsed, flags) is not None
    except (AttributeError, TypeError, ValueError):
        return False


def _shift_leading_assertion(pattern: str) -> str | None:
    r"""``pattern`` with the leading "\b" or lookbehind of each of its alternatives moved
    after the first character; None if one does not start with one, or its first
    character is not plain enough."""
    alternatives = _top_level_alternatives(pattern)
    if alternatives is None:
        return None
    moved = [_shift_alternative(alternative) for alternative in alternatives]
    if any(alternative is None for alternative in moved):
        return None
    return "|".join(filter(None, moved))


def _shift_alternative(pattern: str) -> str | None:
    if pattern.startswith("\\b"):
        rest = pattern[2:]

        def shifted(first: str) -> str | None:
            # Only a literal word character: before a class or a non-word character the
            # edge would mean something else.
            if not (first.isalnum() and len(first) == 1):
                return None
            return f"{first}(?<!\\w{first})"

    elif pattern.startswith(("(?<!", "(?<=")):
        close = _group_end(pattern, 0)
        if close is None:
            return None
        head, body, rest = pattern[:4], pattern[4:close], pattern[close + 1 :]

        def shifted(first: str) -> str | None:
            return f"{first}{head}(?:{body}){first})"

    else:
        return None
    return _shift_into(rest, shifted)


def _shift_into(pattern: str, shifted: Callable[[str], str | None]) -> str | None:
    """``pattern`` with its first character ``x`` replaced by ``shifted(x)``; into every
    alternative when it starts with a group."""
    if not pattern:
        return None
    if pattern.startswith(("(?:", "(?P<")):
        head_end = 3 if pattern.startswith("(?:") else pattern.index(">") + 1
        close = _group_end(pattern, 0)
        if close is None or pattern[close + 1 : close + 2] in _QUANTIFIERS:
            return None
        alternatives = _top_level_alternatives(pattern[head_end:close])
        if alternatives is None:
            return None
        moved = [_shift_into(alternative, shifted) for alternative in alternatives]
        if any(alternative is None for alternative in moved):
            return None
        return pattern[:head_end] + "|".join(filter(None, moved)) + pattern[close:]
    if pattern[0] == "[":
        end = _class_end(pattern)
        first = pattern[: end + 1] if end is not None else None
    elif pattern[0].isalnum():
        first = pattern[0]
    else:
        return None
    if first is None or pattern[len(first) : len(first) + 1] in _QUANTIFIERS:
        return None
    replacement = shifted(first)
    return None if replacement is None else replacement + pattern[len(first) :]


_QUANTIFIERS: Final = frozenset("?*+{")


def _class_end(pattern: str) -> int | None:
    """The index of the "]" that closes the class ``pattern`` starts with."""
    index = 1
    if pattern[index : index + 1] == "^":
        index += 1
    if pattern[index : index + 1] == "]":
        index += 1  # a "]" first in a class is a member
    while index < len(pattern):
        if pattern[index] == "\\":
            index += 2
            continue
        if pattern[index] == "[":
            return None  # a nested set: not read here
        if pattern[index] == "]":
            return index
        index += 1
    return None


class _Unbalanced(ValueError):
    """A character class that never closes."""


def _syntax(pattern: str, index: int = 0) -> Iterator[tuple[int, str]]:
    """The characters of ``pattern`` from ``index`` on that are regex syntax: neither
    escaped nor inside a character class (a class, brackets included, yields nothing).
    Raises ``_Unbalanced`` for a class that never closes."""
    while index < len(pattern):
        character = pattern[index]
        if character == "\\":
            index += 2
            continue
        if character == "[":
            index += 1
            if pattern[index : index + 1] == "^":
                index += 1
            if pattern[index : index + 1] == "]":
                index += 1  # a "]" first in a class is a member
            while index < len(pattern) and pattern[index] != "]":
                index += 2 if pattern[index] == "\\" else 1
            if index >= len(pattern):
                raise _Unbalanced(pattern)
            index += 1
            continue
        yield index, character
        index += 1


def _group_end(pattern: str, index: int) -> int | None:
    """The index of the ")" that closes the group opening at ``index``."""
    depth = 0
    try:
        for position, character in _syntax(pattern, index):
            if character == "(":
                depth += 1
            elif character == ")":
                depth -= 1
                if depth == 0:
                    return position
    except _Unbalanced:
        return None
    return None


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


def factor_alternation(alternation: str) -> str:
    """``(?:what'?s ?app|whatsap+|telegram+|tele|...)`` with its words grouped by their
    first letter: ``(?:w(?:hat'?s ?app|hatsap+)|t(?:elegram+|ele)|...)``.

    At a position where the alternation fails, the engine then tests one letter per
    group instead of every word. Words with different first letters never match at the
    same position, and within a group the words keep their order, so the factored
    pattern prefers, and matches, exactly what the original did. An alternation whose
    words do not all start with a plain letter or digit is returned as it is.
    """
    if not (alternation.startswith("(?:") and alternation.endswith(")")):
        return alternation
    words = _top_level_alternatives(alternation[3:-1])
    if words is None or any(not _starts_plainly(word) for word in words):
        return alternation
    groups: dict[str, list[str]] = {}
    for word in words:
        groups.setdefault(word[0], []).append(word[1:])
    # A letter with one word after it stays that word.
    branches = [
        first + (f"(?:{'|'.join(rests)})" if len(rests) > 1 else rests[0])
        for first, rests in groups.items()
    ]
    return f"(?:{'|'.join(branches)})"


def _starts_plainly(word: str) -> bool:
    """A first character that is a literal letter or digit, not quantified on its own."""
    return bool(word) and word[0].isalnum() and (len(word) == 1 or word[1] not in "?*+{")


def _top_level_alternatives(body: str) -> list[str] | None:
    """``body`` split at the "|" outside brackets and groups; None if unbalanced."""
    words: list[str] = []
    depth = 0
    start = 0
    try:
        for index, character in _syntax(body):
            if character == "(":
                depth += 1
            elif character == ")":
                depth -= 1
                if depth < 0:
                    return None
            elif character == "|" and depth == 0:
                words.append(body[start:index])
                start = index + 1
    except _Unbalanced:
        return None
    if depth != 0:
        return None
    words.append(body[start:])
    return words


def factor_alternations(pattern: str) -> str:
    """Every ``(?:...)`` group of ``pattern``, innermost first, as :func:`factor_alternation`
    makes it. Each group keeps its meaning, so the pattern does."""
    factored = _factor_groups(pattern)
    return pattern if factored is None else factored


def _factor_groups(pattern: str) -> str | None:
    """``pattern`` with its groups factored, innermost first; None if unbalanced."""
    pieces: list[str] = []
    start = 0
    try:
        for index, character in _syntax(pattern):
            if index < start:
                continue  # inside a group already factored
            if character == ")":
                return None
            if character != "(":
                continue
            close = _group_end(pattern, index)
            if close is None:
                return None
            plain = pattern.startswith("(?:", index)
            head_end = index + 3 if plain else _group_head_end(pattern, index)
            inner = _factor_groups(pattern[head_end:close])
            if inner is None:
                return None
            group = pattern[index:head_end] + inner + ")"
            pieces += [pattern[start:index], factor_alternation(group) if plain else group]
            start = close + 1
    except _Unbalanced:
        return None
    pieces.append(pattern[start:])
    return "".join(pieces)


def _group_head_end(pattern: str, index: int) -> int:
    """Where a group's contents start: after "(", "(?P<name>", "(?=", "(?<!" and the like."""
    if not pattern.startswith("(?", index):
        return index + 1
    if pattern.startswith("(?P<", index):
        return pattern.index(">", index) + 1
    for head in ("(?<=", "(?<!", "(?=", "(?!", "(?>"):
        if pattern.startswith(head, index):
            return index + len(head)
    return index + 2
