"""Normalisation: the text the detectors read, with a map back to the original.

Detection runs on a normalised copy of a message so that one rule covers the many ways
people disguise the same detail:

- Unicode: NFKC and casefolding (full-width forms, mathematical letters, ligatures),
  format characters dropped (zero-width spaces and joiners, bidi controls), look-alike
  letters mapped to Latin (Cyrillic and Greek homoglyphs, small capitals, regional
  indicator letters), and decimal digits of other scripts (Arabic-Indic, Persian,
  Devanagari...) mapped to ASCII;
- letter-by-letter spelling closed up ("w h a t s a p p", "m-a-r-k-o");
- "at", "dot" and "underscore" written as words in English, Spanish, Portuguese, French,
  German, Italian and Hindi/Urdu in Latin script, mapped to the English words the e-mail
  rules read ("arroba" -> "at", "punto" -> "dot");
- numbers spoken as words in those languages, mapped to digits when several of them (or
  words and digits) form one run ("cero nueve ocho siete" -> "0987",
  "zéro six, douze, trente-quatre" -> "061234"). A lone "one" or "do" stays a word.

Every normalised character keeps the index of the original character it came from, so
the spans callers get highlight the original text.
"""

from __future__ import annotations

import bisect
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import Final

from moderation.keywords import Keywords, KeywordScan, trie_pattern, windows


@dataclass(frozen=True, slots=True)
class NormalisedText:
    text: str
    # origin[i] is the index in the original text of normalised character i; one extra
    # entry at the end holds the original length so an end offset maps cleanly. None when
    # normalising kept every index (plain ASCII), which spares building the list.
    origin: list[int] | None
    # Spans (in the normalised text) of digits that were written as number words.
    spelled_numbers: tuple[tuple[int, int], ...] = field(default=())

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        if self.origin is None:
            return start, max(start, end)
        if end <= start:
            return self.origin[start], self.origin[start]
        return self.origin[start], self.origin[end - 1] + 1

    def spelled_within(self, start: int, end: int) -> int:
        """How many characters of [start, end) were written as number words."""
        # The spans are sorted and disjoint: start at the first that ends after ``start``.
        spans = self.spelled_numbers
        index = bisect.bisect_right(spans, (start, sys.maxsize)) - 1
        total = 0
        for low, high in spans[max(0, index) :]:
            if low >= end:
                break
            total += max(0, min(end, high) - max(start, low))
        return total


# ---------------------------------------------------------------------------------------
# Characters

# Letters that NFKC leaves alone but that people use to dodge filters ("gm\u0430il" with a
# Cyrillic a). Only lower-case forms are needed because casefolding runs first.
_HOMOGLYPHS: Final[dict[str, str]] = {
    "\u0430": "a",  # cyrillic small letter a
    "\u0432": "b",  # cyrillic small letter ve
    "\u0435": "e",  # cyrillic small letter ie
    "\u0451": "e",  # cyrillic small letter io
    "\u043a": "k",  # cyrillic small letter ka
    "\u043c": "m",  # cyrillic small letter em
    "\u043d": "h",  # cyrillic small letter en
    "\u043e": "o",  # cyrillic small letter o
    "\u0440": "p",  # cyrillic small letter er
    "\u0441": "c",  # cyrillic small letter es
    "\u0442": "t",  # cyrillic small letter te
    "\u0443": "y",  # cyrillic small letter u
    "\u0445": "x",  # cyrillic small letter ha
    "\u0456": "i",  # cyrillic small letter byelorussian-ukrainian i
    "\u0458": "j",  # cyrillic small letter je
    "\u0455": "s",  # cyrillic small letter dze
    "\u0501": "d",  # cyrillic small letter komi de
    "\u04bb": "h",  # cyrillic small letter shha
    "\u04cf": "l",  # cyrillic small letter palochka
    "\u051b": "q",  # cyrillic small letter qa
    "\u051d": "w",  # cyrillic small letter we
    "\u0261": "g",  # latin small letter script g
    "\u028c": "h",  # latin small letter turned v
    "\u0131": "i",  # latin small letter dotless i
    "\u03b1": "a",  # greek small letter alpha
    "\u03b5": "e",  # greek small letter epsilon
    "\u03b9": "i",  # greek small letter iota
    "\u03ba": "k",  # greek small letter kappa
    "\u03bd": "v",  # greek small letter nu
    "\u03bf": "o",  # greek small letter omicron
    "\u03c1": "p",  # greek small letter rho
    "\u03c4": "t",  # greek small letter tau
    "\u03c5": "u",  # greek small letter upsilon
    "\u03c7": "x",  # greek small letter chi
    "\u03f2": "c",  # greek lunate sigma symbol
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u3002": ".",
    "\u2024": ".",
    "\u00b7": ".",
    "\u2019": "'",
    "\u2018": "'",
}

# Blocks holding Latin look-alikes that NFKC does not fold: IPA and phonetic extensions
# (small capitals "ᴛᴇʟᴇɢʀᴀᴍ"), Latin Extended-D (small capital F and S), enclosed
# alphanumerics supplement (negative squared and circled letters) and regional indicators.
_LOOKALIKE_BLOCKS: Final = (
    (0x0250, 0x02AF),
    (0x1D00, 0x1DBF),
    (0xA720, 0xA7FF),
    (0x1F130, 0x1F1FF),
)
_LATIN_NAME: Final = re.compile(
    r"^(?:LATIN LETTER SMALL CAPITAL|REGIONAL INDICATOR SYMBOL LETTER"
    r"|NEGATIVE SQUARED LATIN CAPITAL LETTER|NEGATIVE CIRCLED LATIN CAPITAL LETTER"
    r"|SQUARED LATIN CAPITAL LETTER) ([A-Z])$"
)

# Scripts whose decimal digits people type instead of ASCII ones; NFKC folds full-width
# and mathematical digits but not these. Each entry is the script's digit zero.
_DIGIT_ZEROS: Final = (
    0x0660,  # arabic-indic
    0x06F0,  # extended arabic-indic (persian, urdu)
    0x07C0,  # nko
    0x0966,  # devanagari
    0x09E6,  # bengali
    0x0A66,  # gurmukhi
    0x0AE6,  # gujarati
    0x0B66,  # oriya
    0x0BE6,  # tamil
    0x0C66,  # telugu
    0x0CE6,  # kannada
    0x0D66,  # malayalam
    0x0E50,  # thai
    0x0ED0,  # lao
    0x0F20,  # tibetan
    0x1040,  # myanmar
    0x17E0,  # khmer
    0x1810,  # mongolian
)


def _character_table() -> dict[int, str]:
    table = {ord(key): value for key, value in _HOMOGLYPHS.items()}
    for low, high in _LOOKALIKE_BLOCKS:
        for code_point in range(low, high + 1):
            name = unicodedata.name(chr(code_point), "")
            if (match := _LATIN_NAME.match(name)) is not None:
                table[code_point] = match.group(1).lower()
    for zero in _DIGIT_ZEROS:
        for value in range(10):
            table[zero + value] = str(value)
    return table


CHARACTER_TABLE: Final = _character_table()
# str.translate reads the table (a dict) once per character of a non-ASCII text: 50 ns a
# character, most of the time of normalising a 2,000-character message. The table maps
# no ASCII character, so only the non-ASCII runs of a text need it, and a text with none
# of its characters (a set look-up each, in C) needs no translation at all.
_TRANSLATED: Final = frozenset(chr(code_point) for code_point in CHARACTER_TABLE)


def _translate_lookalikes(text: str) -> str:
    """``text.translate(CHARACTER_TABLE)``, in a fraction of the time."""
    if _TRANSLATED.isdisjoint(text):
        return text
    return _NON_ASCII_RUN.sub(_translate_run, text)


def _translate_run(run: re.Match[str]) -> str:
    return run.group().translate(CHARACTER_TABLE)


_NON_ASCII_RUN: Final = re.compile(r"[^\x00-\x7f]+")
# Unicode category Cf (format characters: zero-width spaces and joiners, bidi controls,
# soft hyphen, tags). A unit test checks this list against unicodedata.
FORMAT_CHARACTER: Final = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)


def _class_members(pattern: str) -> list[str]:
    """The characters of a pattern that is one class of literals and ranges."""
    body = pattern[1:-1]
    members: list[str] = []
    index = 0
    while index < len(body):
        if index + 2 < len(body) and body[index + 1] == "-":
            members.extend(chr(code) for code in range(ord(body[index]), ord(body[index + 2]) + 1))
            index += 3
        else:
            members.append(body[index])
            index += 1
    return members


# The same characters as a set: one C loop of hash look-ups, with no encoding and no
# regex call, tests a short run of non-ASCII text (and a whole message) faster than a
# class with astral ranges or a bytes pattern of its UTF-8 forms does. A lone surrogate
# from a broken client is just another character here.
_FORMAT_CHARACTERS: Final = frozenset(_class_members(FORMAT_CHARACTER.pattern))


def _has_format_character(text: str) -> bool:
    return not _FORMAT_CHARACTERS.isdisjoint(text)


def _fold(text: str) -> tuple[str, list[int] | None]:
    if text.isascii():
        return text.lower(), None
    whole = unicodedata.normalize("NFKC", text).casefold()
    if len(whole) == len(text) and not _has_format_character(text):
        # The common case (Cyrillic prose, fullwidth digits): one character for one.
        return _translate_lookalikes(whole), None
    pieces: list[str] = []
    origin: list[int] = []
    cursor = 0
    for run in _NON_ASCII_RUN.finditer(text):
        run_start, run_end = run.span()
        if run_start > cursor:
            pieces.append(text[cursor:run_start].lower())
            origin.extend(range(cursor, run_start))
        run_text = run.group()
        folded_run = unicodedata.normalize("NFKC", run_text).casefold()
        if len(folded_run) == len(run_text) and not _has_format_character(run_text):
            pieces.append(_translate_lookalikes(folded_run))
            origin.extend(range(run_start, run_end))
        else:
            for index in range(run_start, run_end):
                character = text[index]
                if unicodedata.category(character) == "Cf":
                    continue
                replacement = (
                    unicodedata.normalize("NFKC", character).casefold().translate(CHARACTER_TABLE)
                )
                pieces.append(replacement)
                origin.extend([index] * len(replacement))
        cursor = run_end
    if cursor < len(text):
        pieces.append(text[cursor:].lower())
        origin.extend(range(cursor, len(text)))
    origin.append(len(text))
    return "".join(pieces), origin


# ---------------------------------------------------------------------------------------
# Rewriting with a map back to the original


def _apply_edits(
    text: str, origin: list[int] | None, edits: list[tuple[int, int, str]]
) -> tuple[str, list[int]]:
    """Replaces each (start, end, replacement) of ``text``; edits are sorted and disjoint.

    A replacement's first character maps to the first replaced one and its last to the
    last, so a highlighted span covers the whole written word.
    """
    if origin is None:
        origin = list(range(len(text) + 1))
    pieces: list[str] = []
    new_origin: list[int] = []
    cursor = 0
    for start, end, replacement in edits:
        pieces.append(text[cursor:start])
        new_origin.extend(origin[cursor:start])
        pieces.append(replacement)
        if replacement:
            new_origin.extend([origin[start]] * (len(replacement) - 1))
            new_origin.append(origin[end - 1])
        cursor = end
    pieces.append(text[cursor:])
    new_origin.extend(origin[cursor:])
    return "".join(pieces), new_origin


# "w h a t s a p p", "g m a i l . c o m", "m-a-r-k-o": three or more single letters, one
# separator apart, the same separator throughout.
_SPELLED_LETTERS: Final = re.compile(
    r"(?<![a-z0-9])[a-z](?P<separator>[ .-])[a-z](?:(?P=separator)[a-z]){1,60}(?![a-z0-9])"
)


def _spelled_letter_edits(folded: str) -> list[tuple[int, int, str]]:
    edits: list[tuple[int, int, str]] = []
    for run in _SPELLED_LETTERS.finditer(folded):
        letters = run.group()[::2]
        # "e.g." and "a.m." are two letters; "u.s.a" closes up to a word harmlessly.
        edits.append((run.start(), run.end(), letters))
    return edits


# "at", "dot" and "underscore" in the languages the detector reads. "@" and "." stay as
# they are; the e-mail rules already read the English words in all their bracketings.
_AT_WORDS: Final = (
    "arroba", "arobase", "arrobase", "chiocciola", "klammeraffe", "at the rate of",
    "at the rate", "at d rate", "atrate",
)  # fmt: skip
_DOT_WORDS: Final = ("punto", "ponto", "point", "punkt", "pt")
_UNDERSCORE_WORDS: Final = (
    "underscore", "guion bajo", "guión bajo", "sublinhado", "tiret bas", "unterstrich",
    "trattino basso",
)  # fmt: skip
_WORD_REWRITES: Final = re.compile(
    r"(?<![a-z0-9])(?:(?P<at>"
    + "|".join(re.escape(word) for word in _AT_WORDS)
    + r")|(?P<dot>"
    + "|".join(re.escape(word) for word in _DOT_WORDS)
    + r"))(?![a-z0-9])"
    + r"|\s?(?<![a-z0-9])(?P<underscore>"
    + "|".join(re.escape(word) for word in _UNDERSCORE_WORDS)
    + r")(?![a-z0-9])\s?"
)
# Where the rewrites are worth trying: one scan for the words themselves.
_REWRITE_SCAN: Final = KeywordScan(
    {"rewrite": Keywords(anywhere=_AT_WORDS + _DOT_WORDS + _UNDERSCORE_WORDS)}
)


def _word_edits(folded: str) -> list[tuple[int, int, str]]:
    edits: list[tuple[int, int, str]] = []
    found = _REWRITE_SCAN.scan(folded).get("rewrite", ())
    # A match is its word with at most one space on each side and the word edges beyond.
    for low, high in windows(found, len(folded), before=2, after=2):
        for match in _WORD_REWRITES.finditer(folded, low, high):
            if match.group("at") is not None:
                edits.append((match.start(), match.end(), "at"))
            elif match.group("dot") is not None:
                edits.append((match.start(), match.end(), "dot"))
            else:
                edits.append((match.start(), match.end(), "_"))
    return edits


# ---------------------------------------------------------------------------------------
# Numbers written as words

_NUMBER_WORDS: Final[dict[str, int]] = {}


def _words(value: int, *spellings: str) -> None:
    for spelling in spellings:
        _NUMBER_WORDS[spelling] = value


# English, Spanish, Portuguese, French, German, Italian, Hindi/Urdu (Latin script).
_words(0, "zero", "oh", "cero", "zéro", "null", "shunya", "shoonya", "sifar", "sifr", "sunya")
_words(1, "one", "uno", "una", "um", "uma", "un", "une", "eins", "ein", "ek", "aik")
_words(2, "two", "dos", "dois", "duas", "deux", "zwei", "zwo", "due", "do", "dho")
_words(3, "three", "tres", "três", "trois", "drei", "tre", "teen")
_words(4, "four", "cuatro", "quatro", "quatre", "vier", "quattro", "char", "chaar", "chār")
_words(5, "five", "cinco", "cinq", "fünf", "funf", "fuenf", "cinque", "panch", "paanch", "paanc")
_words(6, "six", "seis", "meia", "sechs", "chhe", "chhah", "chah", "chhai", "cheh")
_words(7, "seven", "siete", "sete", "sept", "sieben", "sette", "saat", "sath")
_words(8, "eight", "ocho", "oito", "huit", "acht", "otto", "aath", "aat")
_words(9, "nine", "nueve", "nove", "neuf", "neun", "nau", "nao")
_words(10, "ten", "diez", "dez", "dix", "zehn", "dieci")
_words(11, "eleven", "once", "onze", "elf", "undici", "gyarah")
_words(12, "twelve", "doce", "doze", "douze", "zwölf", "zwolf", "dodici", "barah")
_words(13, "thirteen", "trece", "treze", "treize", "dreizehn", "tredici", "terah")
_words(14, "fourteen", "catorce", "catorze", "quatorze", "vierzehn", "quattordici", "chaudah")
_words(15, "fifteen", "quince", "quinze", "fünfzehn", "funfzehn", "quindici", "pandrah")
_words(16, "sixteen", "dieciséis", "dieciseis", "dezesseis", "dezasseis", "seize", "sechzehn")
_words(17, "seventeen", "diecisiete", "dezessete", "dezassete", "siebzehn", "diciassette")
_words(18, "eighteen", "dieciocho", "dezoito", "achtzehn", "diciotto")
_words(19, "nineteen", "diecinueve", "dezenove", "dezanove", "neunzehn", "diciannove")
_words(20, "twenty", "veinte", "vinte", "vingt", "vingts", "zwanzig", "venti", "bees")
_words(30, "thirty", "treinta", "trinta", "trente", "dreißig", "dreissig", "trenta", "tees")
_words(40, "forty", "cuarenta", "quarenta", "quarante", "vierzig", "quaranta", "chalis")
_words(50, "fifty", "cincuenta", "cinquenta", "cinquante", "fünfzig", "funfzig", "cinquanta")
_words(60, "sixty", "sesenta", "sessenta", "soixante", "sechzig", "sessanta", "saath")
_words(70, "seventy", "setenta", "siebzig", "settanta", "sattar")
_words(80, "eighty", "ochenta", "oitenta", "achtzig", "ottanta", "assi")
_words(90, "ninety", "noventa", "neunzig", "novanta", "nabbe")
_words(100, "hundred", "cien", "ciento", "cem", "cento", "cent", "hundert", "sau")
for _unit, _spelling in enumerate(
    ("", "ein", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
):
    # German writes units before tens in one word: "dreiundvierzig" is 43.
    if _unit:
        for _tens, _tens_word in ((20, "zwanzig"), (30, "dreißig"), (40, "vierzig")):
            _NUMBER_WORDS[f"{_spelling}und{_tens_word}"] = _tens + _unit
        for _tens, _tens_word in ((50, "fünfzig"), (60, "sechzig"), (70, "siebzig")):
            _NUMBER_WORDS[f"{_spelling}und{_tens_word}"] = _tens + _unit
        for _tens, _tens_word in ((80, "achtzig"), (90, "neunzig"), (30, "dreissig")):
            _NUMBER_WORDS[f"{_spelling}und{_tens_word}"] = _tens + _unit
for _unit, _spelling in enumerate(
    ("", "uno", "dós", "trés", "cuatro", "cinco", "séis", "siete", "ocho", "nueve")
):
    if _unit:  # Spanish: "veintiuno" ... "veintinueve"
        _NUMBER_WORDS["veinti" + _spelling.replace("é", "e").replace("ó", "o")] = 20 + _unit
        _NUMBER_WORDS["veinti" + _spelling] = 20 + _unit
_REPEATERS: Final[dict[str, int]] = {
    "double": 2, "triple": 3, "doble": 2, "triple ": 3, "dupla": 2, "duplo": 2, "doppel": 2,
    "doppio": 2,
}  # fmt: skip
# Between number words of one number: "treinta y cuatro", "vinte e um", "vingt et un".
_CONNECTORS: Final = frozenset(("y", "e", "et", "und", "and"))
_NUMBER_TOKEN: Final = re.compile(r"[a-zßäöüéêèóôíúãõç]+|[0-9]+")
# What may sit between the numbers of one run: spaces, commas, dashes, slashes, dots.
_RUN_GAP: Final = re.compile(r"[\s,./\-()]{0,4}")
_RUN_MIN_WORDS: Final = 2
_RUN_MIN_DIGITS: Final = 5


def _spoken_digits(values: list[tuple[str, int]]) -> str:
    """Digits spoken as a sequence of numbers: [zéro, six, douze] -> "0612".

    Tens followed by a smaller unit join ("trente quatre" -> 34, "soixante dix huit" -> 78),
    "quatre vingt" is 80, a unit before "hundred" multiplies it, and "double five" is 55.
    """
    numbers: list[int | str] = []
    current: int | None = None
    repeat = 1

    def flush() -> None:
        nonlocal current
        if current is not None:
            numbers.append(current)
        current = None

    for kind, value in values:
        if kind == "digits":
            flush()
            numbers.append(str(value))
            continue
        if kind == "repeat":
            flush()
            repeat = value
            continue
        if kind == "raw":
            flush()
            continue
        if repeat > 1 and value < 10:
            numbers.append(str(value) * repeat)
            repeat = 1
            continue
        if value == 100 and current is not None and current < 10:
            current *= 100
        elif value == 20 and current == 4:
            current = 80
        elif (
            current is not None
            and current >= 20
            and current % 10 == 0
            and current < 100
            and (value < 10 or (current in (60, 80) and value < 20))
            and value > 0
        ):
            current += value
        else:
            flush()
            current = value
    flush()
    return "".join(str(number) for number in numbers)


def _number_word_edits(folded: str, low: int, high: int) -> list[tuple[int, int, str]]:
    """Runs of number words (with digit groups among them) rewritten as digits."""
    edits: list[tuple[int, int, str]] = []
    run: list[tuple[int, int, str, int]] = []  # (start, end, kind, value)

    def close_run() -> None:
        while run and run[-1][2] not in ("word", "digits"):
            run.pop()
        words = sum(1 for _, _, kind, _ in run if kind == "word")
        if words >= _RUN_MIN_WORDS:
            digits = _rebuild(run, folded)
            if len(digits) >= _RUN_MIN_DIGITS:
                edits.append((run[0][0], run[-1][1], digits))
        run.clear()

    # A run is never empty after its first token, so previous_end is set where it is read.
    previous_end = -1
    for token in _NUMBER_TOKEN.finditer(folded, low, high):
        start, end = token.span()
        word = token.group()
        pieces = _classify(word)
        if pieces is None:
            if run and word in _CONNECTORS and _is_run_gap(folded, previous_end, start):
                run.append((start, end, "raw", 0))
            else:
                close_run()
            previous_end = end
            continue
        if run and not _is_run_gap(folded, previous_end, start):
            close_run()
        for kind, value in pieces:
            run.append((start, end, kind, value))
        previous_end = end
    close_run()
    return edits


def _is_run_gap(folded: str, start: int, end: int) -> bool:
    """Whether folded[start:end] may sit between two numbers of one run."""
    # Nearly every gap is nothing or one space: those skip the regex call.
    if end == start or (end == start + 1 and folded[start] == " "):
        return True
    return end - start <= 4 and _RUN_GAP.fullmatch(folded, start, end) is not None


# What each number word and repeater reads as, looked up once per token; the lists are
# shared, so their readers never change them. A repeater wins over a number word.
_WORD_PIECES: Final[dict[str, list[tuple[str, int]]]] = {
    **{word: [("word", value)] for word, value in _NUMBER_WORDS.items()},
    **{word: [("repeat", times)] for word, times in _REPEATERS.items()},
}


def _classify(word: str) -> list[tuple[str, int]] | None:
    if word.isdigit():
        return [("digits", int(word) if len(word) < 19 else 0)] if word.isascii() else None
    return _WORD_PIECES.get(word)


def _rebuild(run: list[tuple[int, int, str, int]], folded: str) -> str:
    """The run's digits: digit groups as written, number words spoken as digits."""
    pieces: list[str] = []
    words: list[tuple[str, int]] = []
    for start, end, kind, value in run:
        if kind == "digits":
            if words:
                pieces.append(_spoken_digits(words))
                words = []
            pieces.append(folded[start:end])
        else:
            words.append((kind, value))
    if words:
        pieces.append(_spoken_digits(words))
    return "".join(pieces)


_NUMBER_WORD_PATTERN: Final = trie_pattern(list(_NUMBER_WORDS) + list(_REPEATERS))
_WORD_EDGE: Final = r"(?![a-zßäöüéêèóôíúãõç])"
# A run worth reading in Python: a number word, then more number words, digit groups or
# connectors, each a short gap apart. Most messages have none, and the scan stays in C.
_NUMBER_RUN: Final = re.compile(
    rf"(?<![a-zßäöüéêèóôíúãõç0-9])(?:{_NUMBER_WORD_PATTERN}|[0-9]+){_WORD_EDGE}"
    rf"(?:[\s,./\-()]{{0,4}}(?:{_NUMBER_WORD_PATTERN}|[0-9]+|y|e|et|und|and){_WORD_EDGE}){{1,60}}"
)


def _split_hyphenated_numbers(folded: str) -> str:
    """ "trente-quatre" and "quatre-vingt-dix" read as separate number words."""
    if "-" not in folded:
        return folded
    return _HYPHEN_BETWEEN_NUMBERS.sub(" ", folded)


_LETTER: Final = re.compile(r"[^\W\d_]")
_HYPHEN_BETWEEN_NUMBERS: Final = re.compile(rf"(?<=[a-zéû])-(?={_NUMBER_WORD_PATTERN}(?![a-z]))")


# ---------------------------------------------------------------------------------------


def normalise(text: str) -> NormalisedText:
    folded, origin = _fold(text)
    if letter_edits := _spelled_letter_edits(folded):
        folded, origin = _apply_edits(folded, origin, letter_edits)
    if edits := _word_edits(folded):
        folded, origin = _apply_edits(folded, origin, edits)
    spelled: list[tuple[int, int]] = []
    # Runs read the same with or without the hyphens of "trente-quatre" (a hyphen is a
    # gap between number words), so they are found on the text as it is; the hyphens
    # become spaces only in a text that gets number edits.
    number_edits = [
        edit
        for run in _NUMBER_RUN.finditer(folded)
        # A run of digit groups alone has no number word to rewrite.
        if _LETTER.search(folded, run.start(), run.end()) is not None
        for edit in _number_word_edits(folded, run.start(), run.end())
    ]
    if number_edits:
        split = _split_hyphenated_numbers(folded)
        folded, origin = _apply_edits(split, origin, number_edits)
        shift = 0
        for start, end, replacement in number_edits:
            spelled.append((start + shift, start + shift + len(replacement)))
            shift += len(replacement) - (end - start)
    return NormalisedText(folded, origin, tuple(spelled))
