"""Finds contact details and invitations to leave the platform in chat text.

Every inbox and in-call chat message passes through :func:`find_contact_details` on the
event loop that also carries media, so everything here is pure, precompiled and bounded:
no regular expression has an unbounded repetition that another repetition can re-split,
which keeps the worst case linear in the message length.

Matching runs on a normalised copy of the text (NFKC, casefolded, zero-width and format
characters dropped, look-alike letters mapped to Latin, letter-by-letter spelling closed
up) with a table that maps every normalised character back to its original index, so the
spans a caller gets highlight the original text.

The detector favours precision on ordinary project talk (prices, dates, IDs, the
on-platform call itself, messengers named as product features) because every hit sends a
call to human review; phone numbers therefore need either enough digits with a phone-like
shape, or an explicit cue such as "my number", a leading "+", or digits spelled as words.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from moderation import invitations, payments
from moderation.domains import is_domain
from moderation.first_characters import compile_guarded, factor_alternation
from moderation.invitation_model import INVITATION_MODEL
from moderation.invitations import find_invitations, is_refusal
from moderation.keywords import Keywords, KeywordScan, Span, windows
from moderation.normalise import NormalisedText, normalise
from moderation.payments import find_payments
from moderation.phones import is_valid_phone_number

ContactDetailsKind = Literal[
    "phone", "email", "messenger", "off_platform_request", "link", "payment", "meeting"
]


@dataclass(frozen=True, slots=True)
class ContactDetailsHit:
    kind: ContactDetailsKind
    start: int  # character span in the original text
    end: int


def contains_contact_details(text: str) -> bool:
    return bool(find_contact_details(text))


def find_contact_details(text: str) -> list[ContactDetailsHit]:
    if not text:
        return []
    normalised = normalise(text)
    found = _KEYWORD_SCAN.scan(normalised.text)
    candidates: list[tuple[ContactDetailsKind, int, int]] = []
    candidates.extend(_find_links(normalised.text, found))
    candidates.extend(_find_emails(normalised.text, found))
    candidates.extend(_find_phones(normalised, found))
    candidates.extend(_find_messengers(normalised.text, found))
    candidates.extend(_find_off_platform_requests(normalised.text, text, normalised, found))
    candidates.extend(find_invitations(normalised.text, found))
    # The classifier reads only sentences no rule matched, refused or not.
    candidates.extend(list(_find_learned_invitations(normalised.text, candidates)))
    # A refusal ("I can't share my number") names contact details without giving any.
    if refusals := found.get("refusal"):
        refusal_starts = [start for start, _ in refusals]
        candidates = [
            (kind, start, end)
            for kind, start, end in candidates
            if kind not in _REFUSABLE
            or not _near_refusal_word(refusal_starts, start, end)
            or not is_refusal(normalised.text, start, end)
        ]
    merged = _merge_overlapping(candidates)
    hits = [
        ContactDetailsHit(kind, *normalised.original_span(start, end))
        for kind, start, end in merged
    ]
    for start, end, in_original in find_payments(normalised.text, text, found):
        span = (start, end) if in_original else normalised.original_span(start, end)
        hits.append(ContactDetailsHit("payment", *span))
    if len(hits) > len(merged):
        hits = _merge_hits(hits)
    return hits


_REFUSABLE: Final = frozenset(("off_platform_request", "messenger"))

# The learned classifier reads sentences no rule flagged, at most this many per message
# and this long: scoring costs a dictionary look-up per character n-gram.
_LEARNED_MAX_SENTENCES: Final = 6
_LEARNED_MAX_CHARS: Final = 300
_SENTENCE: Final = re.compile(r"[^.!?\n]+")


def _find_learned_invitations(
    normalised: str, candidates: list[tuple[ContactDetailsKind, int, int]]
) -> Iterator[tuple[ContactDetailsKind, int, int]]:
    """Soft and foreign invitations to leave the platform, by the learned classifier."""
    read = 0
    flagged = sorted((start, end) for _, start, end in candidates)
    for sentence in _SENTENCE.finditer(normalised):
        start, end = sentence.span()
        if end - start > _LEARNED_MAX_CHARS or len(sentence.group().split()) < 3:
            continue
        index = bisect.bisect_left(flagged, (start, -1))
        if (index < len(flagged) and flagged[index][0] < end) or (
            index > 0 and flagged[index - 1][1] > start
        ):
            continue  # a rule already flagged this sentence
        read += 1
        if read > _LEARNED_MAX_SENTENCES:
            return
        if INVITATION_MODEL.is_invitation(sentence.group()):
            yield "off_platform_request", start, end


def _near_refusal_word(refusal_starts: list[int], start: int, end: int) -> bool:
    """Whether a refusal's keyword starts where :func:`is_refusal` would look for it."""
    index = bisect.bisect_left(refusal_starts, start - invitations.REFUSAL_BEFORE)
    return index < len(refusal_starts) and refusal_starts[index] < end + invitations.REFUSAL_AFTER


def _merge_hits(hits: list[ContactDetailsHit]) -> list[ContactDetailsHit]:
    merged = _merge_overlapping([(hit.kind, hit.start, hit.end) for hit in hits])
    return [ContactDetailsHit(kind, start, end) for kind, start, end in merged]


# ---------------------------------------------------------------------------------------
# Overlaps: the UI highlights one span per region, labelled with the most specific kind.

_KIND_PRIORITY: Final[dict[ContactDetailsKind, int]] = {
    "payment": 7,
    "meeting": 6,
    "link": 5,
    "email": 4,
    "phone": 3,
    "messenger": 2,
    "off_platform_request": 1,
}


def _merge_overlapping(
    candidates: list[tuple[ContactDetailsKind, int, int]],
) -> list[tuple[ContactDetailsKind, int, int]]:
    merged: list[tuple[ContactDetailsKind, int, int]] = []
    for kind, start, end in sorted(candidates, key=lambda hit: (hit[1], -hit[2])):
        if end <= start:
            continue
        if merged and start < merged[-1][2]:
            kept_kind, kept_start, kept_end = merged[-1]
            if _KIND_PRIORITY[kind] > _KIND_PRIORITY[kept_kind]:
                kept_kind = kind
            merged[-1] = (kept_kind, kept_start, max(kept_end, end))
        else:
            merged.append((kind, start, end))
    return merged


# ---------------------------------------------------------------------------------------
# Windows: a full scan by the regex engine costs tens of microseconds per pattern on a 2 KB
# message, so most patterns only run near their keywords (a platform name, "@", "/"),
# found for all of them at once by one scan (moderation.keywords). Each finder names the
# keywords it needs in _KEYWORDS, collected for that scan at the end of the module.

_KEYWORDS: Final[dict[str, Keywords]] = {}


@dataclass(frozen=True, slots=True)
class _AnchoredPattern:
    """A pattern run only near its keywords: literal strings every match contains."""

    name: str
    pattern: re.Pattern[str]
    # How far before a keyword a match may start, and how far after it the match (and any
    # lookahead that must see the next word) may reach.
    before: int
    after: int
    # Strings a window must also contain (any one of them) for the pattern to be worth running.
    needs: tuple[str, ...] = ()


def _anchored_matches(
    normalised: str, anchored: _AnchoredPattern, found: Mapping[str, list[Span]]
) -> Iterator[re.Match[str]]:
    spans = found.get(anchored.name, ())
    for low, high in windows(spans, len(normalised), anchored.before, anchored.after):
        if anchored.needs:
            window = normalised[low:high]
            if not any(word in window for word in anchored.needs):
                continue
        yield from anchored.pattern.finditer(normalised, low, high)


# ---------------------------------------------------------------------------------------
# Shared vocabulary

_DIGIT_WORDS: Final[dict[str, str]] = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_DIGIT_WORD_PATTERN: Final = "|".join(_DIGIT_WORDS)

# Messaging apps and off-platform meeting tools. Short forms ("wa", "tg", "ig") only ever
# count inside an invitation or a "label: handle" shape, never on their own.
_PLATFORM: Final = factor_alternation(
    r"(?:what'?s ?app|whatsap+|whtsapp|wh?atsap+|watsap+|whatapp|wapp|wa"
    r"|telegram+|tele|tg|skype|signal|we ?chat|weixin|viber|discord"
    r"|insta(?:gram)?|ig|snap(?:chat)?|kik|line(?= ?(?:id|app|messenger))|facebook(?: messenger)?"
    r"|fb|messenger|linked ?in|twitter|teams|zoom|google meet|hangouts|facetime|imo|threema|botim)"
)

# A messenger named as the subject of the work ("WhatsApp integration", "Telegram bot").
_PROJECT_NOUN_AFTER: Final = re.compile(
    r" {0,2}(?:business|pay|mini|web)? ?(?:bots?|api|apis|integrations?|clone|sdk|ads?|marketing"
    r"|campaigns?|templates?|widgets?|plugins?|webhooks?|automation|chat ?bots?|scrapers?"
    r"|carousels?|reels?|notifications?|share|login|checkout|themes?|analytics|feature|features"
    r"|stickers?|filters?|style|ui|development|developer|dev|website|clones?|api)\b"
)


def _mentions_platform_as_project(normalised: str, platform_end: int) -> bool:
    return _PROJECT_NOUN_AFTER.match(normalised, platform_end) is not None


# ---------------------------------------------------------------------------------------
# Phone numbers
#
# A phone number is found as a run of "digit units" (digit groups, digit words, "double
# five") joined by short separators, then judged as a whole: how many digits, what shape,
# and what is written just before it.

_PHONE_UNIT: Final = re.compile(
    r"(?<![a-z0-9_])(?:"
    r"(?P<digits>(?=o{0,3}[0-9])[0-9o]{1,20}+)"
    rf"|(?P<repeat>(?:double|triple)[ -]?(?:{_DIGIT_WORD_PATTERN}|[0-9]))"
    rf"|(?P<word>{_DIGIT_WORD_PATTERN})"
    r")(?![a-z0-9_])"
)
_PHONE_UNIT_UNNAMED: Final = re.sub(r"\(\?P<\w+>", "(?:", _PHONE_UNIT.pattern)
# No "_": digits joined by it are file names and identifiers ("IMG_20240612_143055").
_PHONE_SEPARATOR: Final = r"[ \t\-.()\[\],*~]{1,4}"
_DIGITS: Final = re.compile(r"[0-9]+")
_WORD_TAIL: Final = re.compile(r"[a-z0-9_]+")
_DIGITS_REMOVED: Final = str.maketrans("", "", "0123456789")
_DIGITS_AND_SEPARATORS_REMOVED: Final = str.maketrans("", "", "0123456789 \t-.()[],*~")
# Units and separators share no character, so a run never backtracks more than one unit.
_PHONE_RUN: Final = compile_guarded(
    rf"{_PHONE_UNIT_UNNAMED}(?:{_PHONE_SEPARATOR}{_PHONE_UNIT_UNNAMED}){{0,40}}"
)
_PHONE_MIN_DIGITS: Final = 7
_PHONE_MAX_DIGITS: Final = 15  # E.164
_PHONE_PLAIN_MIN_DIGITS: Final = 9
_PHONE_CONTEXT_CHARS: Final = 40

# Written before a number that is NOT a phone number: identifiers of all sorts.
_PHONE_NEGATIVE_CONTEXT: Final = compile_guarded(
    r"(?:\b(?:order|orders|invoice|inv|isbn|issn|ean|upc|gtin|sku|asin|ticket|tracking|track"
    r"|ref|reference|serial|card|iban|account|acct|routing|swift|bic|po|batch|lot|build"
    r"|version|ver|model|part|item|receipt|transaction|txn|booking|confirmation|pnr|vat|tax"
    r"|ein|ssn|id|property|patent|doi|code|pin|zip|postcode|row|rows|license|licence|key"
    r"|pedido|bestell\w*|commande|facture|rechnung|factura|fatura|auftrag|case|p/n|pn|ean"
    r"|lotto|lottery|draw|picks|pages?|chapters?|scenes?|slides?|ids|crc\w*|mask|hex|binary)"
    r"(?: ?(?:numbers?|nos?\.?|num|nr|#|ids?|codes?))?"
    r"|#)[ :.#-]*"
)
# Written before (or after) a number that IS meant as a phone number.
_PHONE_CUE: Final = compile_guarded(
    r"\b(?:phone|ph|mobile|mob|cell|cellphone|tel|telephone|number|numbers|num|no\.|nr"
    r"|digits|call|ring|text|sms|whats ?app|wa|viber|signal|telegram|tg|contact|reach|dial"
    r"|landline|line|hotline|fax|me at|me on|i am on|i'm on|mine"
    # Spanish, Portuguese, French, German, Italian, Hindi/Urdu, Arabic, Persian, Hindi,
    # Chinese, Korean, Japanese
    r"|número|numero|teléfono|telefono|telefone|téléphone|tél|celular|cel|móvil|movil"
    r"|portable|handy|handynummer|nummer|rufnummer|llámame|llamame|llama|ligar|liga"
    r"|appelle|ruf|chiamami|mobile number|contato|contacto|rabta|zap|whats"
    r"|رقم|رقمي|هاتفي|جوالي|شماره|شمارم|تلفن|नंबर|मोबाइल|फ़ोन|电话|手机|手机号|号码|번호|電話)\b"
)
_CURRENCY_BEFORE: Final = re.compile(r"(?:[$€£¥₹₽]|\b(?:usd|eur|gbp|rs\.?|inr|rub))\s?$")
# A text _CURRENCY_BEFORE matches in ends, white space stripped, with one of these: a
# str.endswith test spares the search, which tries every position of the 40 characters
# before each digit run.
_CURRENCY_ENDINGS: Final = (*"$€£¥₹₽", "usd", "eur", "gbp", "rs", "rs.", "inr", "rub")
_QUANTITY_AFTER: Final = re.compile(
    r"\s?(?:%|[$€£¥₹₽]|(?:usd|eur|gbp|dollars?|euros?|rub|inr|words?|views?|rows?|px|pixels?"
    r"|users?|subscribers?|followers?|items?|records?|contacts?|pages?|ms|kb|mb|gb|hours?"
    r"|minutes?|seconds?|days?|times?)\b)"
)
_DECIMAL_LIST: Final = re.compile(r"-?\d+\.\d+(?:(?:\s*,\s*|\s+)-?\d+\.\d+)+")
_IP_ADDRESS: Final = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DOTTED_GROUPS: Final = re.compile(r"\d+(?:\.\d+){2,}")
# An operator with its other operand next to it: a number, a hex literal or a bracket
# before, or a number or a bracket after. "phone=415..." has a word before its "=".
_OPERATOR: Final = r"(?:==|!=|<=|>=|<<|>>|[=*\u00d7\u00f7^&|<>]|\bmod\b|\bxor\b|\bdiv\b)"
_OPERATOR_BEFORE: Final = re.compile(rf"(?:[0-9)\]]|\b0x[0-9a-f]+)\s?(?:[-+/]\s?)?{_OPERATOR}\s?$")
# The same for _OPERATOR_BEFORE: every operator ends with one of these.
_OPERATOR_ENDINGS: Final = (*"=*\u00d7\u00f7^&|<>", "mod", "xor", "div")
_OPERATOR_AFTER: Final = re.compile(rf"\s?{_OPERATOR}\s?[0-9(]")
_THOUSANDS: Final = re.compile(r"\d{1,3}([ ,.])\d{3}(?:\1\d{3})*")
_DATE_PREFIX: Final = re.compile(
    r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./]\d{1,2}\b|\d{1,2}[-./]\d{1,2}[-./](?:19|20)\d\d\b"
)


@dataclass(slots=True)
class _DigitRun:
    start: int
    end: int
    groups: list[str]  # numeric units as written (with "o" read as 0); words give one digit
    spelled_digits: int = 0
    letter_o_for_zero: bool = False

    @property
    def digits(self) -> str:
        return "".join(self.groups)


_KEYWORDS["phone.words"] = Keywords(word_starts=("double", "triple"), words=tuple(_DIGIT_WORDS))


def _digit_runs(normalised: str, found: Mapping[str, list[Span]]) -> Iterator[_DigitRun]:
    length = len(normalised)
    if _DIGITS.search(normalised) is not None:
        # Measured: with digits about, one scan beats windows around each group.
        units: list[Span] = [(0, length)]
    else:
        # Only spelled digits: every unit is a digit word and units in a run are at most a
        # separator apart, so windows around the words, merged, hold whole runs.
        units = found.get("phone.words", [])
    for low, window_end in windows(units, length, before=8, after=6):
        # A window never ends inside a word: cut there, "threesignal" would read "three".
        word_end = _WORD_TAIL.match(normalised, window_end)
        high = window_end if word_end is None else word_end.end()
        for candidate in _PHONE_RUN.finditer(normalised, low, high):
            # Seven digits need at least seven characters; most numbers stop here.
            if candidate.end() - candidate.start() < _PHONE_MIN_DIGITS:
                continue
            written = candidate.group()
            if not written.translate(_DIGITS_AND_SEPARATORS_REMOVED):
                digit_count = len(written) - len(written.translate(_DIGITS_REMOVED))
                if not _PHONE_MIN_DIGITS <= digit_count <= _PHONE_MAX_DIGITS:
                    continue
            yield _parse_digit_run(normalised, candidate.start(), candidate.end())


def _parse_digit_run(normalised: str, start: int, end: int) -> _DigitRun:
    run = _DigitRun(start, end, [])
    for unit in _PHONE_UNIT.finditer(normalised, start, end):
        if (written := unit.group("digits")) is not None:
            if "o" in written:
                run.letter_o_for_zero = True
            run.groups.append(written.replace("o", "0"))
        elif (repeated := unit.group("repeat")) is not None:
            times = 2 if repeated.startswith("double") else 3
            spoken = repeated[6:].strip(" -")
            run.groups.append(_DIGIT_WORDS.get(spoken, spoken) * times)
            run.spelled_digits += times
        else:
            run.groups.append(_DIGIT_WORDS[unit.group("word")])
            run.spelled_digits += 1
    return run


def _find_phones(
    mapping: NormalisedText, found: Mapping[str, list[Span]]
) -> Iterator[tuple[ContactDetailsKind, int, int]]:
    normalised = mapping.text
    for run in _digit_runs(normalised, found):
        run.spelled_digits += mapping.spelled_within(run.start, run.end)
        if _is_phone_number(normalised, run):
            start = run.start
            while start > 0 and normalised[start - 1] in "+(" and run.start - start < 2:
                start -= 1
            yield "phone", start, run.end


def _is_phone_number(normalised: str, run: _DigitRun) -> bool:
    digit_count = sum(len(group) for group in run.groups)
    if not _PHONE_MIN_DIGITS <= digit_count <= _PHONE_MAX_DIGITS:
        return False
    before = normalised[max(0, run.start - _PHONE_CONTEXT_CHARS) : run.start]
    after = normalised[run.end : run.end + 20]
    currency_before = before.rstrip().endswith(_CURRENCY_ENDINGS) and _CURRENCY_BEFORE.search(
        before
    )
    if currency_before or _QUANTITY_AFTER.match(after):
        return False
    written = normalised[run.start : run.end]
    if _IP_ADDRESS.fullmatch(written):
        return False
    international = before.endswith(("+", "+(", "+ "))

    if _looks_like_version(normalised, run, written) or _is_calculation(before, after):
        return False
    if not international and _is_small_number_list(run, written):
        return False

    cue_end = max((cue.end() for cue in _PHONE_CUE.finditer(before)), default=-1)
    negative_end = max(
        (negative.end() for negative in _PHONE_NEGATIVE_CONTEXT.finditer(before)), default=-1
    )
    if negative_end >= 0 and negative_end >= cue_end:
        return False
    if international and is_valid_phone_number(run.digits, international=True):
        return True
    if cue_end >= 0 or _PHONE_CUE.match(after.lstrip(" -,")):
        return True

    looks_like_something_else = (
        _DECIMAL_LIST.fullmatch(written) is not None
        or _THOUSANDS.fullmatch(written) is not None
        or _DATE_PREFIX.match(written) is not None
        or _is_monotonic_list(run.groups)
    )
    if looks_like_something_else:
        return False
    disguised = run.spelled_digits >= 3 or run.letter_o_for_zero
    if disguised:
        return True
    # No cue and no disguise: only a number some country assigns, by libphonenumber's
    # metadata, with enough digits that a short reference does not pass for one.
    return digit_count >= _PHONE_PLAIN_MIN_DIGITS and is_valid_phone_number(
        run.digits, international=False
    )


def _looks_like_version(normalised: str, run: _DigitRun, written: str) -> bool:
    """A software version or build: "Chrome/124.0.6367.91", "Windows 10.0.19045.4291".

    Right after a product token ("Chrome/", "OPR/") digits are its version, as in every
    browser user-agent string. Dotted groups with a one-digit group after the first are
    a version too: phone numbers written with dots ("415.882.0193", "06.12.34.56.78",
    "1.800.555.0199") keep every group after the first at two digits or more.
    """
    if run.start >= 2 and normalised[run.start - 1] == "/" and normalised[run.start - 2].isalpha():
        return True
    if _DOTTED_GROUPS.fullmatch(written) is None:
        return False
    return any(len(group) == 1 for group in written.split(".")[1:])


def _is_calculation(before: str, after: str) -> bool:
    """An operand of arithmetic: "2^31 - 1 = 2147483647", "3141592653 mod 97"."""
    operator_before = before.rstrip().endswith(_OPERATOR_ENDINGS) and (
        _OPERATOR_BEFORE.search(before) is not None
    )
    return operator_before or _OPERATOR_AFTER.match(after) is not None


def _is_small_number_list(run: _DigitRun, written: str) -> bool:
    """Lottery picks, page, seat or question numbers: "7 19 3 42 11 28", "112, 87, 301, 45".

    Numbers of one or two digits, some of two: five or more without a leading zero, or six
    or more with one ("05 11 23 31 44 49"). A phone number read out in pairs is five pairs
    and keeps its trunk zero ("06 12 34 56 78"); one read digit by digit has no two-digit
    group. Numbers of up to three digits with commas between them are a list too: people
    do not put commas inside a phone number they type as digits.
    """
    groups = run.groups
    if run.spelled_digits or run.letter_o_for_zero or len(groups) < 3:
        return False
    if all(len(group) == 1 for group in groups):
        return False
    if "," in written and all(len(group) <= 3 for group in groups):
        return True
    if any(len(group) > 2 for group in groups):
        return False
    if len(groups) >= 6:
        return True
    return len(groups) >= 5 and not any(group.startswith("0") for group in groups)


def _is_monotonic_list(groups: list[str]) -> bool:
    """Counts, years, type scales ("12 14 16 18 24 32"): ordered numbers, not a phone.

    A leading zero marks a trunk prefix ("06 12 34 56 78"), so such runs stay phones.
    """
    if len(groups) < 4 or groups[0].startswith("0"):
        return False
    values = [int(group) for group in groups]
    pairs = list(itertools.pairwise(values))
    return all(a < b for a, b in pairs) or all(a > b for a, b in pairs)


# ---------------------------------------------------------------------------------------
# E-mail addresses

# Possessive: what follows a local part never starts with one of its characters, and
# giving characters back would only retry the same failure once per character.
_EMAIL_LOCAL_MAX: Final = 64
_EMAIL_LOCAL: Final = r"[a-z0-9][a-z0-9._%+-]{0,63}+"
_EMAIL_LABEL: Final = r"[a-z0-9][a-z0-9-]{0,62}"
_EMAIL_PLAIN: Final = re.compile(
    rf"(?<![a-z0-9._%+-]){_EMAIL_LOCAL}@(?P<domain>(?:{_EMAIL_LABEL}\.){{1,8}}[a-z]{{2,24}})"
    # "git@github.com:org/repo.git" is an SSH remote, not a mailbox.
    r"(?![a-z0-9-]|:[a-z0-9~/])"
)
_AT_WORD: Final = r"(?:\s{0,3}[(\[{<]\s{0,2}(?:at|@)\s{0,2}[)\]}>]\s{0,3}|\s{1,3}at\s{1,3})"
_AT_SIGN_SPACED: Final = r"(?:\s{0,3}@\s{0,3})"
_DOT_WORD: Final = (
    r"(?:\s{0,3}[(\[{<]\s{0,2}(?:dot|\.)\s{0,2}[)\]}>]\s{0,3}|\s{1,3}dot\s{1,3}|\s{1,3}\.\s{1,3})"
)
_DOT_ANY: Final = rf"(?:\.|{_DOT_WORD})"
_EMAIL_DISGUISED: Final = compile_guarded(
    rf"(?<![a-z0-9._%+-])(?P<local>{_EMAIL_LOCAL}(?:{_DOT_WORD}{_EMAIL_LOCAL}){{0,3}})"
    rf"(?P<at>{_AT_WORD}|{_AT_SIGN_SPACED})"
    rf"(?P<domain>{_EMAIL_LABEL}(?:{_DOT_ANY}{_EMAIL_LABEL}){{0,4}})"
    r"(?![a-z0-9@-]|\.[a-z0-9]|:[a-z0-9~/])"
)
_DOT_WORD_RE: Final = re.compile(_DOT_WORD)
# After " at ": a provider name, or a label followed by a dot in any of its disguises.
_DOMAIN_AFTER_AT_WORD: Final = re.compile(
    rf"\s{{0,2}}(?:{_EMAIL_LABEL}{_DOT_ANY}[a-z]|gmail|googlemail|hotmail|protonmail|proton|ymail"
    r"|gmx|fastmail|tutanota|rediffmail|yandex|icloud|aol|outlook|yahoo|zoho|mail)"
)
_DOT_ANY_RE: Final = re.compile(_DOT_ANY)
# Providers whose name alone after "@" or "at" means a mailbox.
_MAIL_ONLY_PROVIDERS: Final = frozenset(
    {"gmail", "googlemail", "hotmail", "protonmail", "ymail", "gmx", "fastmail", "tutanota"}
    | {"rediffmail", "yandex", "icloud", "aol", "outlook", "yahoo", "proton", "zoho", "mail"}
)
# Providers that are also companies or products people work at or with.
_AMBIGUOUS_PROVIDERS: Final = frozenset({"yahoo", "outlook", "icloud", "aol", "zoho", "mail"})
# "look at index.html": a file name after "at" is not a domain.
_FILE_EXTENSIONS: Final = frozenset((
    "html", "htm", "py", "js", "ts", "tsx", "jsx", "css", "scss", "json", "yaml", "yml", "md",
    "txt", "php", "java", "go", "rs", "rb", "cpp", "c", "h", "sh", "pdf", "png", "jpg", "jpeg",
    "gif", "svg", "psd", "ai", "doc", "docx", "xls", "xlsx", "csv", "zip", "mp4", "mov", "xml",
    "sql", "env", "lock", "toml", "ini", "cfg", "vue", "kt", "swift", "dart", "fig", "sketch",
    "xd", "log",
))  # fmt: skip
_EMAIL_CUE: Final = re.compile(r"\b(?:e-?mail|mail|gmail|contact|address|write|reach|send)\b")
_PROVIDER_HANDLE: Final = compile_guarded(
    r"\b(?:(?:my|personal) (?:gmail|hotmail|yahoo|outlook|icloud|proton ?mail|proton)"
    r"(?: (?:id|address|account))?\s{0,3}(?:is|:|=|-)"
    r"|(?:gmail|hotmail|yahoo|outlook|icloud|proton ?mail)(?: (?:id|address))?\s{0,2}[:=])"
    r"\s{0,3}(?=[a-z0-9._]{0,40}[0-9._])[a-z0-9][a-z0-9._]{2,40}"
)


_AT_ANCHORS: Final = ("@", " at ", "(at", "[at", "{at", "<at", "(@", "[@", "{@", "<@")
_PROVIDER_NAMES: Final = ("gmail", "hotmail", "yahoo", "outlook", "icloud", "proton")


_KEYWORDS["email.at_sign"] = Keywords(anywhere=("@",))
_KEYWORDS["email.at"] = Keywords(anywhere=_AT_ANCHORS)
_KEYWORDS["email.provider"] = Keywords(anywhere=_PROVIDER_NAMES)


def _find_emails(
    normalised: str, found: Mapping[str, list[Span]]
) -> Iterator[tuple[ContactDetailsKind, int, int]]:
    length = len(normalised)
    at_signs = found.get("email.at_sign", ())
    for low, high in windows(at_signs, length, before=_EMAIL_LOCAL_MAX + 1, after=260):
        for plain in _EMAIL_PLAIN.finditer(normalised, low, high):
            if is_domain(plain.group("domain")):
                yield "email", plain.start(), plain.end()
    anchors = [
        (start, end)
        for start, end in found.get("email.at", ())
        if normalised[start] != " " or _DOMAIN_AFTER_AT_WORD.match(normalised, end) is not None
    ]
    # Before: a local part of up to four pieces joined by " dot "; after: the domain.
    for low, high in windows(anchors, length, before=100, after=120):
        position = low
        while (match := _EMAIL_DISGUISED.search(normalised, position, high)) is not None:
            if _is_disguised_email(normalised, match):
                yield "email", match.start(), match.end()
                position = match.end()
            else:
                # "me at sam.porter at gmail": the rejected candidate's domain may be the
                # next candidate's local part, so resume inside it rather than after it.
                position = match.start("domain")
    # "my personal gmail id: x.y", "outlook: ..." ("proton mail" holds "proton").
    providers = found.get("email.provider", ())
    for low, high in windows(providers, length, before=10, after=120):
        for match in _PROVIDER_HANDLE.finditer(normalised, low, high):
            yield "email", match.start(), match.end()


def _is_disguised_email(normalised: str, match: re.Match[str]) -> bool:
    local, at, domain = match.group("local", "at", "domain")
    labels = _DOT_ANY_RE.split(domain)
    top_level = labels[-1]
    at_written_as_word = "@" not in at
    dots_disguised = _DOT_WORD_RE.search(domain) is not None
    if len(labels) == 1:
        if domain not in _MAIL_ONLY_PROVIDERS:
            return False
        if not at_written_as_word or domain not in _AMBIGUOUS_PROVIDERS:
            return not _looks_like_plain_word(local) or _has_email_cue(normalised, match)
        return _has_email_cue(normalised, match) or not _looks_like_plain_word(local)
    if not top_level.isalpha() or not is_domain(".".join(labels)):
        return False
    if top_level in _FILE_EXTENSIONS or labels[0] == "www":
        return False
    if not at_written_as_word or dots_disguised:
        return True
    # "name at domain.tld" is also how people write "the files at docs.example.org".
    return (
        labels[0] in _MAIL_ONLY_PROVIDERS
        or not _looks_like_plain_word(local)
        or _has_email_cue(normalised, match)
    )


def _looks_like_plain_word(local: str) -> bool:
    return local.isalpha()


def _has_email_cue(normalised: str, match: re.Match[str]) -> bool:
    window = normalised[max(0, match.start() - 30) : match.start()]
    return _EMAIL_CUE.search(window) is not None


# ---------------------------------------------------------------------------------------
# Links to off-platform contact

_URL_SCHEME_CONTACT: Final = re.compile(
    r"(?<![a-z0-9])(?:mailto|tel|sms|callto|facetime|facetime-audio|skype|zoommtg|msteams)"
    r":(?!\s)[^\s<>\"']{2,200}"
    r"|(?<![a-z0-9])(?:whatsapp|tg|viber|signal|discord|fb-messenger)://[^\s<>\"']{1,200}"
)
_LINK_DOT: Final = r"(?:\.|\s{0,2}[(\[{]\s{0,1}(?:dot|\.)\s{0,1}[)\]}]\s{0,2}|\s{1,3}dot\s{1,3})"
_LINK_DOT_SPACED: Final = rf"(?:{_LINK_DOT}|\s{{1,2}}\.\s{{1,2}})"
_LINK_SLASH: Final = r"(?:\s{0,2}/\s{0,2}|\s{1,3}slash\s{1,3})"
_LINK_PATH: Final = (
    rf"{_LINK_SLASH}[a-z0-9_#@%+~=?&.:-]{{1,200}}(?:{_LINK_SLASH}[^\s<>\"']{{1,200}})?"
)


def _contact_domain(*labels: str, subdomains: bool = False) -> str:
    prefix = r"(?:[a-z0-9-]{1,40}\.)?" if subdomains else ""
    return prefix + _LINK_DOT_SPACED.join(re.escape(label) for label in labels)


_CONTACT_DOMAINS: Final = "|".join(
    [
        _contact_domain("wa", "me"),
        _contact_domain("wa", "link"),
        _contact_domain("whatsapp", "com", subdomains=True),
        _contact_domain("t", "me"),
        _contact_domain("telegram", "me"),
        _contact_domain("telegram", "dog"),
        _contact_domain("calendly", "com"),
        _contact_domain("cal", "com"),
        _contact_domain("tidycal", "com"),
        _contact_domain("zcal", "co"),
        _contact_domain("zoom", "us", subdomains=True),
        _contact_domain("meet", "google", "com"),
        _contact_domain("teams", "microsoft", "com"),
        _contact_domain("teams", "live", "com"),
        _contact_domain("skype", "com", subdomains=True),
        _contact_domain("discord", "gg"),
        _contact_domain("discord", "com", subdomains=True),
        _contact_domain("discordapp", "com"),
        _contact_domain("m", "me"),
        _contact_domain("messenger", "com", subdomains=True),
        _contact_domain("instagram", "com", subdomains=True),
        _contact_domain("ig", "me"),
        _contact_domain("instagr", "am"),
        _contact_domain("facebook", "com", subdomains=True),
        _contact_domain("fb", "com", subdomains=True),
        _contact_domain("fb", "me"),
        _contact_domain("linkedin", "com", subdomains=True),
        _contact_domain("linktr", "ee"),
        _contact_domain("signal", "me"),
        _contact_domain("signal", "group"),
        _contact_domain("viber", "com", subdomains=True),
        _contact_domain("line", "me"),
        _contact_domain("whereby", "com"),
        _contact_domain("snapchat", "com", subdomains=True),
        _contact_domain("wechat", "com", subdomains=True),
        _contact_domain("weixin", "qq", "com"),
        _contact_domain("threema", "id"),
    ]
)
# A bare domain ("Discord.com has an API") is a topic; a path makes it somebody's address.
_CONTACT_DOMAIN_HOST: Final = compile_guarded(
    rf"(?<![a-z0-9.@-])(?:https?\s{{0,2}}:\s{{0,2}}//\s{{0,2}})?(?:www\.)?(?:{_CONTACT_DOMAINS})"
    r"(?![a-z0-9-])"
)
_LINK_PATH_RE: Final = re.compile(_LINK_PATH)
_CONTACT_PAGE_HOST: Final = compile_guarded(
    r"(?<![a-z0-9.@-])(?:https?://)?(?:www\.)?(?P<domain>(?:[a-z0-9][a-z0-9-]{0,62}\.){1,4}"
    r"[a-z]{2,24})/(?:contact(?:[-_]?(?:us|me))?|get[-_]?in[-_]?touch|hire[-_]?me|book(?:[-_]?a[-_]?call)?"
    r"|schedule|reach[-_]?me|let'?s[-_]?talk|lets[-_]?talk|call[-_]?me|whatsapp)(?![a-z0-9])"
)
# A contact page is the client's own site under repair more often than the sender's.
_SOMEONE_ELSES_SITE: Final = re.compile(
    r"\b(?:your|client'?s?|customer'?s?|their|fix|broken|bug|form|redesign|update|doesn'?t"
    r"|does not|isn'?t|not working)\b"
)
_MY_SITE: Final = compile_guarded(
    r"\bmy (?:own |personal )?(?:web ?site|site|portfolio site|homepage|blog)"
    r"(?: is| at| has| here)?[:\s]{1,3}(?:https?://)?(?:www\.)?"
    r"(?P<domain>(?:[a-z0-9][a-z0-9-]{0,62}\.){1,3}[a-z]{2,24})\b(?![.@])"
)


# Every spelling _MY_SITE accepts holds one of these ("website", "portfolio site").
_MY_SITE_WORDS: Final = ("site", "homepage", "blog")
_URL_SCHEMES: Final = (
    "mailto:", "tel:", "sms:", "callto:", "facetime:", "facetime-audio:", "skype:", "zoommtg:",
    "msteams:", "whatsapp://", "tg://", "viber://", "signal://", "discord://", "fb-messenger://",
)  # fmt: skip
_URL_TAIL: Final = re.compile(r"[^\s<>\"']{0,200}")
# The longest host part a link may have before the slash that starts its path.
_LINK_HOST_MAX: Final = 90


_KEYWORDS["link.scheme"] = Keywords(anywhere=_URL_SCHEMES)
_KEYWORDS["link.slash"] = Keywords(anywhere=("/", "slash"))
_KEYWORDS["link.my_site"] = Keywords(anywhere=_MY_SITE_WORDS)


def _find_links(
    normalised: str, found: Mapping[str, list[Span]]
) -> Iterator[tuple[ContactDetailsKind, int, int]]:
    length = len(normalised)
    for start, _ in found.get("link.scheme", ()):
        if (match := _URL_SCHEME_CONTACT.match(normalised, start)) is not None:
            yield "link", start, _trim_trailing_punctuation(normalised, match)
    # Domains need a path, so every contact link has a slash just after its host. Host
    # patterns run only between a slash and the host length before it; the path is read
    # afterwards, so no scan runs on through the rest of the message.
    slashes = found.get("link.slash", ())
    for low, high in windows(slashes, length, before=_LINK_HOST_MAX, after=10):
        for match in _CONTACT_DOMAIN_HOST.finditer(normalised, low, high):
            if (path := _LINK_PATH_RE.match(normalised, match.end())) is not None:
                yield "link", match.start(), _trim_trailing_punctuation(normalised, path)
        for match in _CONTACT_PAGE_HOST.finditer(normalised, low, min(length, high + 30)):
            if match.start() >= high:
                break
            tail = _URL_TAIL.match(normalised, match.end())
            end = _trim_trailing_punctuation(normalised, tail) if tail else match.end()
            surroundings = normalised[max(0, match.start() - 40) : end + 40]
            if _SOMEONE_ELSES_SITE.search(surroundings) is None and is_domain(match["domain"]):
                yield "link", match.start(), end
    # From "my own web" before the site word to a domain of four labels after it.
    for low, high in windows(found.get("link.my_site", ()), length, before=15, after=300):
        for match in _MY_SITE.finditer(normalised, low, high):
            if is_domain(match["domain"]):
                yield "link", match.start(), match.end()


def _trim_trailing_punctuation(normalised: str, match: re.Match[str]) -> int:
    """Sentence punctuation after a link ("see t.me/bob.") is not part of it."""
    end = match.end()
    while end > match.start() + 1 and normalised[end - 1] in ".,;:!?)'\"":
        end -= 1
    return end


# ---------------------------------------------------------------------------------------
# Messenger handles and invitations

_ME: Final = r"(?:me|us|you|u)"
_SUGGESTION: Final = (
    r"\b(?:let'?s|lets|let us|we (?:can|could|should|will)|we'?ll|can we|could we|shall we"
    r"|why not|i'?d prefer|i prefer|prefer to|i'?d rather)\b"
)
_ID_WORD: Final = r"(?:id|handle|number|no\.?|num|username|user ?name|name|contact|acc|account)"
_HANDLE: Final = (
    r"(?:@[a-z0-9_][a-z0-9_.]{1,31}|\+?[0-9][0-9 ().-]{5,20}[0-9]|live:[a-z0-9._:-]{2,40}"
    r"|(?=[a-z0-9._#-]{0,40}[0-9._#])[a-z][a-z0-9._#-]{2,40})"
)
# Each pattern with the strings it cannot match without: a window around a platform name
# only runs the patterns whose strings it contains.
_MESSENGER_PATTERNS: Final[tuple[tuple[tuple[str, ...], re.Pattern[str]], ...]] = (
    # "add me on whatsapp", "ping me on skype", "connect with me on linkedin"
    (
        ("me", "us", "you", " u"),
        compile_guarded(
            rf"\b(?:add|message|msg|messege|text|ping|contact|reach|call|dm|pm|inbox|write|hit"
            rf"|find|follow|catch|buzz|send|sent|connect|talk|chat|speak|join|meet|facetime)"
            rf" (?:with |to )?{_ME}\b(?: up)?[^.!?\n]{{0,30}}?\b(?P<platform>{_PLATFORM})\b"
        ),
    ),
    (
        ("hmu",),
        compile_guarded(rf"\bhmu\b[^.!?\n]{{0,20}}?\b(?P<platform>{_PLATFORM})\b"),
    ),
    # "let's switch to whatsapp", "we can chat on signal", "let's use skype"
    (
        ("let", "we", "prefer", "rather", "why not"),
        compile_guarded(
            rf"{_SUGGESTION}[^.!?\n]{{0,25}}?\b(?:chat|talk|speak|continue|connect|communicate|discuss|meet|call|text|message|jump|hop|get|do"
            rf"|finish|sort|handle|wrap|video)\b[^.!?\n]{{0,20}}?\b(?:on|via|over|through|using|in)"
            rf" (?:a |an |the |my |your )?(?P<platform>{_PLATFORM})\b"
        ),
    ),
    (
        ("let", "we", "prefer", "rather", "why not"),
        compile_guarded(
            rf"{_SUGGESTION}[^.!?\n]{{0,25}}?\b(?:move|switch|go|use)\b(?: (?:over )?to)?"
            rf" (?:a |an |the |my |your )?(?P<platform>{_PLATFORM})\b"
        ),
    ),
    (
        ("prefer", "rather"),
        compile_guarded(
            rf"\b(?:i'?d|i|we) (?:prefer|rather use|would prefer)\b(?: to use| using)?"
            rf" (?P<platform>{_PLATFORM})\b"
        ),
    ),
    # "i'm on telegram as @x"
    (
        ("i'm", "im ", "i am", "we're", "we are"),
        compile_guarded(rf"\b(?:i'?m|i am|we'?re|we are) (?:also )?on (?P<platform>{_PLATFORM})\b"),
    ),
    # "whatsapp me", "telegram me" ("signal me" is plain English)
    (
        (" me", " us"),
        compile_guarded(
            r"\b(?P<platform>what'?s ?app|whatsap+|watsap+|wh?atsapp|telegram|tele|skype|viber"
            r"|we ?chat|facetime|snap|kik|dm|pm|inbox) (?:me|us)\b"
        ),
    ),
    # "my telegram is @bob_dev", "my skype id: bob.dev"
    (
        ("my ",),
        compile_guarded(
            rf"\bmy (?P<platform>{_PLATFORM})(?: {_ID_WORD})?\s{{0,3}}(?:is\b|:|=|-)"
            rf"(?:\s{{0,3}}{_HANDLE})?"
        ),
    ),
    (
        ("my ",),
        compile_guarded(
            rf"\bmy (?P<platform>{_PLATFORM})(?: {_ID_WORD})?\s{{0,3}}@[a-z0-9_][a-z0-9_.]{{1,31}}"
        ),
    ),
    # "tg: @bobdev", "Line ID: bob123", "WeChat, ID: bob_dev88"
    (
        (":", "=", "-"),
        compile_guarded(
            rf"(?<![a-z0-9])(?P<platform>{_PLATFORM}),?(?: {_ID_WORD})?"
            rf"\s{{0,2}}[:=-]\s{{0,3}}{_HANDLE}"
        ),
    ),
    (
        ("@",),
        compile_guarded(
            rf"(?<![a-z0-9])(?P<platform>{_PLATFORM})\b[^.!?\n@]{{0,15}}@[a-z0-9_][a-z0-9_.]{{1,31}}"
        ),
    ),
    # "do you have telegram?", "are you on whatsapp"
    (
        ("you", " u "),
        compile_guarded(
            rf"\b(?:do|are|r|have|got)\s{_ME}\s(?:have |use |using |on |got )?(?:an? )?"
            rf"(?P<platform>{_PLATFORM})\b"
        ),
    ),
    # "what's your whatsapp?", "send me your skype id"
    (
        ("your", "ur "),
        compile_guarded(
            rf"\b(?:what'?s|what is|send me|give me|share|drop|tell me|need|get|have)"
            rf" (?:your|ur) (?P<platform>{_PLATFORM})\b"
        ),
    ),
    (
        ("your", "ur "),
        compile_guarded(
            rf"\b(?:your|ur) (?P<platform>{_PLATFORM})(?: {_ID_WORD})?\s{{0,2}}(?=[?.!,]|$)"
        ),
    ),
    # "a quick zoom call", "a whatsapp video call"
    (
        ("call", "meeting", "chat", "session"),
        compile_guarded(
            rf"\b(?:an?|quick|short) (?:quick |short )?(?P<platform>{_PLATFORM})"
            r" (?:call|meeting|chat|session|video ?call|voice ?call)\b"
        ),
    ),
    # "viber works better for me"
    (
        ("better", "easier", "faster", "quicker", "simpler"),
        compile_guarded(
            rf"\b(?P<platform>{_PLATFORM}) (?:is |works |would be )?(?:much |way )?(?:better|easier"
            r"|faster|quicker|simpler)\b"
        ),
    ),
    (
        ("join",),
        compile_guarded(rf"\bjoin (?:my|our) (?P<platform>{_PLATFORM})\b"),
    ),
)
# Every spelling _PLATFORM accepts contains one of these; the short names need word edges.
_PLATFORM_ANCHORS: Final = (
    "atsap", "whtsap", "whatap", "wapp", "what's app", "whats app", "telegram", "skype",
    "signal", "wechat", "we chat", "weixin", "viber", "discord", "insta", "snap", "line id",
    "line app", "line messenger",
    "facebook", "messenger", "linkedin", "linked in", "twitter", "teams", "zoom",
    "google meet", "hangouts", "facetime", "threema", "botim",
)  # fmt: skip
_PLATFORM_SHORT_WORDS: Final = ("wa", "tg", "ig", "fb", "imo", "kik", "dm", "pm", "hmu", "tele")
_PLATFORM_SHORT_WORDS_ALSO: Final = ("inbox",)


_PLATFORM_NAME: Final = compile_guarded(rf"\b{_PLATFORM}\b")


_KEYWORDS["messenger.platform"] = Keywords(
    anywhere=_PLATFORM_ANCHORS, words=_PLATFORM_SHORT_WORDS + _PLATFORM_SHORT_WORDS_ALSO
)


def _find_messengers(
    normalised: str, found: Mapping[str, list[Span]]
) -> Iterator[tuple[ContactDetailsKind, int, int]]:
    mentions: list[tuple[int, int]] = []
    for anchor_start, anchor_end in found.get("messenger.platform", ()):
        name = _PLATFORM_NAME.search(normalised, max(0, anchor_start - 6), anchor_end + 12)
        # "WhatsApp integration" names the work, and invitations never use it that way,
        # so such a mention needs no window at all.
        if name is None or not _mentions_platform_as_project(normalised, name.end()):
            mentions.append((anchor_start, anchor_end))
    # Wide enough for "let's <25 chars> talk <20 chars> on whatsapp" before the name and a
    # handle (and the word that says it is a project topic) after it.
    for low, high in windows(mentions, len(normalised), before=85, after=60):
        window = normalised[low:high]
        for needed, pattern in _MESSENGER_PATTERNS:
            if not any(word in window for word in needed):
                continue
            for match in pattern.finditer(normalised, low, high):
                if _mentions_platform_as_project(normalised, match.end("platform")):
                    continue
                yield "messenger", match.start(), match.end()


# ---------------------------------------------------------------------------------------
# Requests to move the conversation elsewhere

_COMMUNICATE: Final = factor_alternation(
    r"(?:talk|chat|continue|communicate|speak|discuss|connect|contact|deal|work|pay|trade"
    r"|meet|move|switch|go|correspond|message|text|call|email|e-mail|proceed|transact|settle"
    r"|arrange|finish|do business|do this|do it|sort (?:it|this) out|reach|get)"
)
_ELSEWHERE_TARGET: Final = factor_alternation(
    r"(?:platform|site|website|app|marketplace|chat|inbox|here|fiverr|upwork|freelancer"
    r"|peopleperhour|system)"
)
_PERSONAL: Final = r"(?:(?:personal|private|direct|real|own|work|business) )?"
_CONTACT_NOUN: Final = factor_alternation(
    r"(?:phone(?: number)?|cell(?: number)?|mobile(?: number)?|number|e-?mail(?: address)?"
    r"|contact(?: (?:details|info|information|number))?|personal details|digits|whats ?app"
    r"|skype|telegram)"
)
# "your email template", "your number of pages", "your contact form"
_CONTACT_NOUN_AS_PROJECT: Final = (
    r"(?! (?:template|templates|list|lists|marketing|campaign|campaigns|newsletter|form|forms"
    r"|page|pages|field|fields|of|us|model|case|screen|size|provider|client|server|signature"
    r"|sequence|automation|integration|design|setup|settings|notifications?))"
)
_CONTACT_NOUN_ANCHORS: Final = ("phone", "cell", "mobile", "number", "mail", "contact", "digits")
_CONTACT_NOUN_ANCHORS_ALSO: Final = ("whats", "skype", "telegram")


def _anchored(
    anchors: tuple[str, ...], before: int, after: int, pattern: str, needs: tuple[str, ...] = ()
) -> _AnchoredPattern:
    name = f"off_platform.{len(_KEYWORDS)}"
    _KEYWORDS[name] = Keywords(anywhere=anchors)
    return _AnchoredPattern(name, compile_guarded(pattern), before, after, needs)


_OFF_PLATFORM_REQUESTS: Final = (
    _anchored(
        ("off", "outside", "away from", "beyond", "instead of", "not "),
        80,
        40,
        rf"\b{_COMMUNICATE}\b[^.!?\n]{{0,25}}?\b(?:off|outside(?: of)?|away from|beyond"
        rf"|instead of|not (?:through|via|on|in)) (?:the |this )?{_ELSEWHERE_TARGET}\b",
    ),
    _anchored(("off",), 0, 20, r"\boff[ -]?(?:the )?platform\b"),
    _anchored(
        ("elsewhere", "somewhere else", "offline", "outside", "private", "off "),
        60,
        40,
        r"\b(?:take|move|continue|shift|carry) (?:this|our|the) (?:conversation |chat "
        r"|discussion |talk |convo |communication )?(?:elsewhere|somewhere else|offline"
        rf"|outside|private(?:ly)?|off (?:the |this )?{_ELSEWHERE_TARGET})\b",
    ),
    _anchored(
        ("directly",),
        40,
        40,
        r"\b(?:contact|email|e-mail|mail|message|pay|call|text|reach|hire|talk|communicate|trade"
        r"|transact)(?: (?:me|us|you))? directly\b"
        r"|\b(?:work|deal|talk|communicate|trade|transact)(?: with (?:me|you|each other|us))?"
        r" directly(?=\s*[,.!?;]|\s*$| (?:outside|off|not|without|instead|with))"
        r"|\bdirectly to (?:me|my)\b",
    ),
    _anchored(
        ("avoid", "skip", "save on", "bypass", "dodge", "escape", "cut out"),
        0,
        80,
        r"\b(?:avoid|skip|save on|bypass|dodge|escape|cut out)(?: the| their| platform'?s?"
        r"| these| all the| any| paying| site'?s?| fiverr'?s?| upwork'?s?){0,3}"
        r" (?:fees?|commission|cut|service (?:fees?|charges?)|middle ?man)\b",
    ),
    _anchored(
        ("pay ",),
        25,
        60,
        r"\b(?:don'?t|do not|not)(?: want to)? pay (?:the |their )?(?:platform|site|service"
        r"|fiverr|upwork)(?:'s)? (?:fees?|commission)\b",
    ),
    _anchored(
        ("privately", "in private"),
        80,
        20,
        rf"\b(?:{_COMMUNICATE}|sort it out)\b[^.!?\n]{{0,20}}?\b(?:privately|in private)\b",
    ),
    _anchored(
        ("mail", "phone", "sms", "text"),
        50,
        30,
        r"\b(?:continue|talk|chat|speak|communicate|discuss|correspond|connect)"
        r" (?:on|via|over|by|through) (?:the |a )?(?:e-?mail|phone|sms|text messages?|telephone)\b",
        needs=(" on ", " via ", " over ", " by ", " through "),
    ),
    _anchored(
        ("your ", "ur "),
        30,
        70,
        rf"\b(?:give|send|share|drop|tell|pass|text|leave|post|dm|forward|type)(?: me)? (?:your|ur)"
        rf" {_PERSONAL}{_CONTACT_NOUN}\b{_CONTACT_NOUN_AS_PROJECT}"
        rf"|\b(?:what'?s|what is|can i (?:get|have)|could i (?:get|have)|may i (?:get|have)"
        rf"|i need|need|share|send|exchange|swap) (?:me )?(?:your|ur|our)"
        rf" {_PERSONAL}{_CONTACT_NOUN}\b{_CONTACT_NOUN_AS_PROJECT}",
    ),
    # "do you have an email I can send it to" ("a number" is too often a budget)
    _anchored(
        _CONTACT_NOUN_ANCHORS + _CONTACT_NOUN_ANCHORS_ALSO,
        50,
        40,
        rf"\b(?:do|have|got) (?:you|u) (?:have |got )?(?:an? )?{_PERSONAL}(?:e-?mail(?: address)?"
        rf"|phone number|cell|mobile number|whats ?app|skype|telegram)\b{_CONTACT_NOUN_AS_PROJECT}",
        needs=("you ", " u "),
    ),
    _anchored(
        ("not ", "n't ", "never ", "without ", "avoid ", "skip ", "bypass "),
        10,
        70,
        rf"\b(?:not|n't|never|without|rather not|avoid|skip|bypass) (?:go(?:ing)?|work(?:ing)?"
        rf"|deal(?:ing)?|pay(?:ing)?|us(?:e|ing)|do(?:ing)? (?:this|it|business)) (?:through|via|on"
        rf"|over) (?:the |this )?{_ELSEWHERE_TARGET}\b",
    ),
    _anchored(
        ("exchange", "swap", "trade", "share"),
        0,
        40,
        r"\b(?:exchange|swap|trade|share) (?:our )?(?:numbers|contacts|emails|e-mails"
        r"|phone numbers|contact (?:details|info))\b",
    ),
    _anchored(
        ("good ",),
        0,
        40,
        r"\bgood (?:number|e-?mail|way) to (?:reach|contact|call) (?:you|me)\b",
    ),
    _anchored(
        ("my ",),
        0,
        70,
        r"\bmy (?:personal |private |direct )?(?:contact (?:details|info|information|number)"
        r"|(?:phone|cell|mobile) number|e-?mail(?: address)?|number|whats ?app)\b"
        r"(?=\s*(?:is\b|are\b|:|=|-|,|[0-9+]|here|below|above|attached|in (?:the|my)"
        r"|on (?:the|my)|$))"
        r"|\bmy (?:phone|cell|mobile)\b(?=\s*(?:[:=]|is\s[0-9+(]))",
    ),
    _anchored(
        (" me on my",),
        6,
        30,
        r"\b(?:call|ring|phone) me on my (?:mobile|cell|phone|number|landline)\b",
    ),
    _anchored(("phone call",), 15, 12, r"\b(?:an?|quick|short) (?:quick |short )?phone call\b"),
    _anchored(
        (" me a", " me your"),
        6,
        30,
        r"\b(?:give|shoot|drop|send|flick) me (?:an?|your) (?:quick )?(?:ring|call|buzz|text|txt"
        r"|sms|e-?mail|mail)\b",
    ),
)
# "call me", "text me", "email me": judged with the words around them.
_DIRECT_CONTACT_VERB: Final = _anchored(
    ("call me", "ring me", "text me", "txt me", "sms me", "phone me", "mail me"),
    2,
    3,
    r"\b(?:call|ring|text|txt|sms|phone|e-?mail|mail) me\b",
)
_ON_PLATFORM_AFTER: Final = re.compile(
    r" (?:here|in (?:the|this) (?:app|chat|inbox|call)|on (?:the|this) (?:platform|site)"
    r"|through (?:the|this) (?:app|inbox|platform)|via the call button)\b"
)
# Software, not a person, is the one e-mailing ("the form should email me a copy").
_MACHINE_SUBJECT_BEFORE: Final = re.compile(
    r"\b(?:it|form|site|app|system|script|bot|server|tool|that|which|this|cron|job)"
    r" (?:should|will|would|must|can|could|to|shall|then)(?: also| just)? $"
)
# "the text me button": the phrase names a control in the product being built.
_UI_ELEMENT_AFTER: Final = re.compile(
    r"['\"]? (?:button|link|cta|label|option|feature|widget|icon|banner|popup|modal|form)s?\b"
)
_IDIOM_AFTER_CALL_ME: Final = re.compile(r" (?:crazy|old[- ]fashioned|paranoid|picky|lazy)\b")
_NOT_A_NAME: Final = frozenset((
    "at", "on", "in", "back", "when", "whenever", "tomorrow", "today", "tonight", "now", "asap",
    "later", "after", "before", "if", "anytime", "any", "monday", "tuesday", "wednesday",
    "thursday", "friday", "saturday", "sunday", "this", "next", "please", "pls", "plz",
    "directly", "instead", "or", "and", "so", "to", "first",
))  # fmt: skip


def _find_off_platform_requests(
    normalised: str, original: str, mapping: NormalisedText, found: Mapping[str, list[Span]]
) -> Iterator[tuple[ContactDetailsKind, int, int]]:
    for anchored in _OFF_PLATFORM_REQUESTS:
        for match in _anchored_matches(normalised, anchored, found):
            yield "off_platform_request", match.start(), match.end()
    for match in _anchored_matches(normalised, _DIRECT_CONTACT_VERB, found):
        if _is_direct_contact_request(normalised, original, mapping, match):
            yield "off_platform_request", match.start(), match.end()


def _is_direct_contact_request(
    normalised: str, original: str, mapping: NormalisedText, match: re.Match[str]
) -> bool:
    start, end = match.span()
    before = normalised[max(0, start - 40) : start]
    after = normalised[end : end + 40]
    if before.endswith(("video ", "video-")) or _ON_PLATFORM_AFTER.match(after):
        return False
    if _MACHINE_SUBJECT_BEFORE.search(before) or _UI_ELEMENT_AFTER.match(after):
        return False
    # A quoted phrase is a label being talked about ("the 'Email me' button").
    if before and after and before[-1] in "'\"" and after[0] in "'\"":
        return False
    if normalised.startswith("call", start) or normalised.startswith("ring", start):
        if _IDIOM_AFTER_CALL_ME.match(after):
            return False
        next_word = re.match(r" ([a-z][a-z'-]*)", after)
        if next_word is not None and next_word.group(1) not in _NOT_A_NAME:
            # "call me Bob": a capitalised word after "call me" is a name, not a channel.
            original_index = mapping.original_span(end + 1, end + 2)[0]
            following = original[original_index : original_index + 2]
            if following[:1].isupper() and not following.isupper():
                return False
    return True


# ---------------------------------------------------------------------------------------
# One pass over the message finds where each rule is worth running.

_KEYWORD_SCAN: Final = KeywordScan(
    {
        **_KEYWORDS,
        **invitations.KEYWORDS,
        **payments.KEYWORDS,
        "refusal": invitations.REFUSAL_KEYWORDS,
    }
)
