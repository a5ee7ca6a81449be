import itertools
import sys
import time
import unicodedata

import pytest
from contact_details_corpus import CONTACT_DETAILS_CORPUS
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.contact_details import (
    ContactDetailsKind,
    contains_contact_details,
    find_contact_details,
)
from moderation.normalise import (
    CHARACTER_TABLE,
    FORMAT_CHARACTER,
    _class_members,
    _has_format_character,
    _translate_lookalikes,
)

# --- the labelled corpus: a measurement -------------------------------------------------


def test_corpus_is_large_and_balanced() -> None:
    positives = sum(1 for _, expected in CONTACT_DETAILS_CORPUS if expected)
    negatives = len(CONTACT_DETAILS_CORPUS) - positives
    assert len(CONTACT_DETAILS_CORPUS) >= 220
    assert positives >= len(CONTACT_DETAILS_CORPUS) / 2
    assert negatives >= len(CONTACT_DETAILS_CORPUS) / 2
    assert len({text for text, _ in CONTACT_DETAILS_CORPUS}) == len(CONTACT_DETAILS_CORPUS)


def test_corpus_recall_and_false_positive_rate() -> None:
    missed = [text for text, expected in CONTACT_DETAILS_CORPUS if expected]
    missed = [text for text in missed if not contains_contact_details(text)]
    flagged = [text for text, expected in CONTACT_DETAILS_CORPUS if not expected]
    flagged = [text for text in flagged if contains_contact_details(text)]
    positives = sum(1 for _, expected in CONTACT_DETAILS_CORPUS if expected)
    negatives = len(CONTACT_DETAILS_CORPUS) - positives
    recall = 1 - len(missed) / positives
    false_positive_rate = len(flagged) / negatives
    figures = (
        f"contact-details corpus: recall {recall:.3f} ({positives - len(missed)}/{positives}), "
        f"false-positive rate {false_positive_rate:.3f} ({len(flagged)}/{negatives}); "
        f"missed {missed!r}; wrongly flagged {flagged!r}"
    )
    print(figures)
    assert recall >= 0.95, figures
    assert false_positive_rate <= 0.02, figures


# --- per kind, with spans in the original text -------------------------------------------


def _hits(text: str) -> list[tuple[ContactDetailsKind, str]]:
    return [(hit.kind, text[hit.start : hit.end]) for hit in find_contact_details(text)]


@pytest.mark.parametrize(
    ("text", "kind", "span_text"),
    [
        ("Call me at 555-123-4567 after 6pm", "phone", "555-123-4567"),
        ("my number is +44 7700 900123", "phone", "+44 7700 900123"),
        ("call (415) 555 0132 now", "phone", "(415) 555 0132"),
        (
            "five five five one two three four, that's my cell",
            "phone",
            "five five five one two three four",
        ),
        ("reach me: 555\u200b123\u200b4567 ok", "phone", "555\u200b123\u200b4567"),
        ("my no. is 0O7 7OO 9OO 123", "phone", "0O7 7OO 9OO 123"),
        (
            "seven seven zero zero nine double zero one two three",
            "phone",
            "seven seven zero zero nine double zero one two three",
        ),
        ("send to john.doe@gmail.com.", "email", "john.doe@gmail.com"),
        ("bob (at) gmail [dot] com please", "email", "bob (at) gmail [dot] com"),
        ("jane.smith AT yahoo DOT co DOT uk", "email", "jane.smith AT yahoo DOT co DOT uk"),
        ("send it to sarah.k@gmail", "email", "sarah.k@gmail"),
        ("j o h n @ g m a i l . c o m", "email", "j o h n @ g m a i l . c o m"),
        ("\ufb01nal draft to bob@gmail.com", "email", "bob@gmail.com"),
        ("alex.w\uff20gmail\uff0ecom", "email", "alex.w\uff20gmail\uff0ecom"),
        ("d\u0430vid.k@gm\u0430il.com", "email", "d\u0430vid.k@gm\u0430il.com"),
        ("my telegram is @bob_dev", "messenger", "my telegram is @bob_dev"),
        ("add me on whatsapp", "messenger", "add me on whatsapp"),
        ("ping me on skype: live:bob", "messenger", "ping me on skype: live:bob"),
        ("WHATSAPP ME", "messenger", "WHATSAPP ME"),
        ("w h a t s a p p me", "messenger", "w h a t s a p p me"),
        ("What's your WhatsApp?", "messenger", "What's your WhatsApp"),
        (
            "let's continue outside the platform",
            "off_platform_request",
            "continue outside the platform",
        ),
        ("ok, email me directly", "off_platform_request", "email me directly"),
        ("Call me when you get this", "off_platform_request", "Call me"),
        ("can we talk off here", "off_platform_request", "talk off here"),
        ("See https://t.me/bobdev.", "link", "https://t.me/bobdev"),
        ("book calendly.com/bob-dev/30min today", "link", "calendly.com/bob-dev/30min"),
        ("mailto:bob@x.io", "link", "mailto:bob@x.io"),
        ("tel:+14155550132", "link", "tel:+14155550132"),
        ("zoom dot us slash j slash 98765432101", "link", "zoom dot us slash j slash 98765432101"),
        ("more about me: bobdev.io/contact", "link", "bobdev.io/contact"),
    ],
)
def test_finds_each_kind_with_its_span_in_the_original_text(
    text: str, kind: ContactDetailsKind, span_text: str
) -> None:
    assert (kind, span_text) in _hits(text)


@pytest.mark.parametrize(
    "text",
    [
        # numbers that are not phone numbers
        "Budget is 2000-3000 USD, 50% upfront",
        "The deadline is 2026-11-22 at 14:30 UTC",
        "Order 4471 2209 was delivered yesterday",
        "The ISBN is 978-3-16-148410-0",
        "Please export at resolution 1920 1080",
        "Use the Stripe test card 4242 4242 4242 4242",
        "Server IP is 192.168.1.100",
        "Sales for 2019 2020 2021 2022 2023 in one chart",
        "The table has 12 345 678 rows",
        "Please keep file names like IMG_20240612_143055.jpg",
        # e-mail look-alikes
        "Clone git@github.com:acme/shop.git and run make",
        "Upgrade @angular/core@17.0.1 first",
        "I worked at Yahoo for 5 years",
        "Take a look at index.html and styles.css",
        # messengers as the subject of the work
        "I built a WhatsApp bot for a client last year",
        "The app needs WhatsApp integration for order updates",
        "A Discord bot with slash commands for our server",
        "Signal processing in MATLAB, about 40 hours of work",
        # the on-platform call and "call" as a word
        "the API call returns 404 when the token expires",
        "Let's hop on a video call here tomorrow at 10",
        "You can call me Bob",
        "the contact form should email me a copy of each submission",
        "The 'Email me' button in the footer should open a modal",
        # links that are not contact channels
        "The docs at docs.python.org/3/library/re.html explain it",
        "Add a Calendly widget on the landing page",
        "The form on acme-bakery.com/contact doesn't send, can you fix it?",
    ],
)
def test_leaves_ordinary_project_talk_alone(text: str) -> None:
    assert _hits(text) == []


# --- numbers that look like phone numbers, one test per rule ---------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Chrome/124.0.6367.91 Safari/537.36",  # a product token's version
        "OPR/109.0.5097.45 only",
        "Chrome 124.0.6367.91 on Windows",  # dotted groups with a one-digit group
        "Windows 10.0.19045.4291",
    ],
)
def test_versions_are_not_phone_numbers(text: str) -> None:
    assert _hits(text) == []


@pytest.mark.parametrize(
    "text", ["text 415.882.0193 later", "call 06.12.34.56.78", "ring 1.800.555.0199"]
)
def test_phone_numbers_written_with_dots_still_count(text: str) -> None:
    assert [kind for kind, _ in _hits(text)] == ["phone"]


@pytest.mark.parametrize(
    "text",
    ["2^31 - 1 = 2147483647", "3141592653 mod 97 = 2", "0xff = 4294967295", "x = 4158820193 * 2"],
)
def test_operands_of_a_calculation_are_not_phone_numbers(text: str) -> None:
    assert _hits(text) == []


def test_an_equals_sign_after_a_word_still_gives_a_phone_number() -> None:
    assert [kind for kind, _ in _hits("phone=4158820193")] == ["phone"]


@pytest.mark.parametrize(
    "text",
    [
        "my lucky numbers are 4 8 15 16 23 42",  # small numbers, a cue notwithstanding
        "this week 05 11 23 31 44 49",  # six pairs
        "questions 112, 87, 301, 45 were skipped",  # commas between short numbers
    ],
)
def test_lists_of_small_numbers_are_not_phone_numbers(text: str) -> None:
    assert _hits(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "call 06 12 34 56 78 tonight",  # five pairs with the trunk zero
        "my number: 0 7 4 0, 0 1 2, 3 4 5 6",  # digit by digit
        "my cell is two one two, three three three, four four four four",
    ],
)
def test_phone_numbers_read_out_in_pieces_still_count(text: str) -> None:
    assert "phone" in [kind for kind, _ in _hits(text)]


def test_no_fees_as_a_fact_is_not_an_invitation() -> None:
    assert _hits("no fees were mentioned in the brief") == []
    assert _hits("no fees if we do it outside") != []


def test_hits_are_sorted_and_do_not_overlap() -> None:
    text = "Call me at 555-123-4567 or bob@gmail.com, or add me on whatsapp; wa.me/14155550132"
    hits = find_contact_details(text)
    assert [hit.kind for hit in hits] == [
        "off_platform_request",
        "phone",
        "email",
        "messenger",
        "link",
    ]
    for earlier, later in itertools.pairwise(hits):
        assert earlier.end <= later.start


def test_overlapping_findings_become_one_hit_of_the_most_specific_kind() -> None:
    text = "add me on whatsapp: wa.me/14155550132"
    assert _hits(text) == [("link", text)]


def test_empty_text_has_no_hits() -> None:
    assert find_contact_details("") == []
    assert not contains_contact_details("")


def test_format_character_list_matches_unicode_category_cf() -> None:
    # The fast normalisation path relies on this list; a new Unicode version may add to it.
    missing = [
        f"U+{code_point:04X}"
        for code_point in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code_point)) == "Cf"
        and FORMAT_CHARACTER.fullmatch(chr(code_point)) is None
    ]
    assert missing == []


def test_the_utf8_format_check_finds_exactly_the_format_characters() -> None:
    listed = {
        chr(code_point)
        for code_point in range(sys.maxunicode + 1)
        if FORMAT_CHARACTER.fullmatch(chr(code_point)) is not None
    }
    assert set(_class_members(FORMAT_CHARACTER.pattern)) == listed
    for character in listed:
        assert _has_format_character(f"caf\u00e9{character}x")
    assert not _has_format_character("caf\u00e9 \u0645\u0631\u062d\u0628\u0627 \ud800")


# --- arbitrary input ---------------------------------------------------------------------

_TRICKY_PIECES = st.sampled_from(
    [
        " ", "@", ".", " at ", " dot ", "(at)", "[dot]", "+", "-", "(", ")", "/", ":", "0", "7",
        "o", "five ", "double ", "whatsapp", " me", "my ", "call me ", "t.me/", "wa.me/", "gmail",
        "\u200b", "\uff10", "\ufb01", "\u0430", "\u0301", "\U0001d400", "\n", "'", "\"", "#",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(_TRICKY_PIECES, max_size=60).map("".join)))
def test_never_raises_and_spans_stay_in_bounds(text: str) -> None:
    hits = find_contact_details(text)
    previous_end = 0
    for hit in hits:
        assert 0 <= hit.start < hit.end <= len(text)
        assert hit.start >= previous_end
        previous_end = hit.end
    assert contains_contact_details(text) == bool(hits)


# --- guard against catastrophic backtracking (not a benchmark) ---------------------------

_SIXTY_FOUR_KB = 65536


@pytest.mark.parametrize(
    "unit",
    [
        "1 ", "a@", "a.", "a at ", "a dot ", "1", "five ", "o1", "+(1) ", "w ", "my wa: ", "1-",
        "x@y.", "www.", "t.me/", "call me ", "1\u200b", "let's talk on ", "http://",
        "bob at gmail dot ", "(at)", "a" , "\uff11 ", "double ",
    ],
)  # fmt: skip
def test_adversarial_64_kb_input_finishes_quickly(unit: str) -> None:
    text = (unit * (_SIXTY_FOUR_KB // len(unit) + 1))[:_SIXTY_FOUR_KB]
    started = time.perf_counter()
    find_contact_details(text)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{unit!r} * 64 KB took {elapsed:.2f} s"


def test_the_look_alike_table_maps_no_ascii_character() -> None:
    # Normalising translates only the non-ASCII runs of a text (see _translate_lookalikes).
    assert all(code_point > 0x7F for code_point in CHARACTER_TABLE)
    text = "gm\u0430il \u0661\u0662 ok \u1d1b\u1d07\u029f\u1d07"
    assert _translate_lookalikes(text) == text.translate(CHARACTER_TABLE)
