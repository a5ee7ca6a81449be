"""The moderation package: normalisers, the new kinds, split messages, the evaluation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from moderation.contact_details import ContactDetailsKind, find_contact_details
from moderation.evaluation import evaluate_messages, evaluate_split, load
from moderation.normalise import NormalisedText, normalise
from moderation.phones import is_valid_phone_number
from moderation.split_messages import EarlierMessage, find_split_contact_details

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "contact_details_data"


# --- normalisers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        # digits of other scripts
        ("٠٥٠١٢٣٤٥٦٧", "0501234567"),
        ("۰۹۱۲", "0912"),
        ("९८७६", "9876"),
        ("\uff10\uff17\uff17", "077"),
        # small capitals and look-alikes, zero-width characters
        ("ᴛᴇʟᴇɢʀᴀᴍ", "telegram"),
        ("gm\u0430il", "gmail"),
        ("wh\u200bats\u200capp", "whatsapp"),
        ("🇼🇦", "wa"),
        # spelled letters with one separator throughout
        ("m-a-r-k-o", "marko"),
        ("w h a t s a p p", "whatsapp"),
        # at / dot / underscore words
        ("ana punto ruiz arroba correo punto es", "ana dot ruiz at correo dot es"),
        ("julie point martin arobase orange point fr", "julie dot martin at orange dot fr"),
        ("tom underscore riley", "tom_riley"),
        # number words in runs, per language
        ("five five five one two three four", "5551234"),
        ("cero nueve ocho siete seis cinco", "098765"),
        ("nove nove oito sete seis cinco", "998765"),
        ("zéro six, douze, trente-quatre", "061234"),
        ("null eins sieben drei vier", "01734"),
        ("nau aath saat chhe paanch", "98765"),
        ("sifar teen sau, ek do", "030012"),
        ("555 one two three 4567", "5551234567"),
    ],
)
def test_normaliser(text: str, normalised: str) -> None:
    assert normalise(text).text == normalised


@pytest.mark.parametrize(
    "text", ["number one tip", "step one, two and three", "do you have time", "top five reasons"]
)
def test_lone_number_words_stay_words(text: str) -> None:
    assert normalise(text).text == text.lower()


def test_spans_map_back_to_the_original_text() -> None:
    text = "mi número es cero nueve ocho siete, seis cinco cuatro, tres dos uno"
    [hit] = find_contact_details(text)
    assert text[hit.start : hit.end] == "cero nueve ocho siete, seis cinco cuatro, tres dos uno"


def test_phone_validation_uses_libphonenumber() -> None:
    assert is_valid_phone_number("447911123456", international=True)
    assert not is_valid_phone_number("999911123456", international=True)
    assert not is_valid_phone_number("1024204840968192", international=False)


# --- each kind -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("IBAN GB82 WEST 1234 5698 7654 32, reference 'logo'", "payment"),
        ("bitcoin: 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "payment"),
        ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "payment"),
        ("UPI id: rohit.sharma@okaxis", "payment"),
        ("just venmo me @kev-sketch", "payment"),
        ("zoom meeting id 712 449 8830 passcode 9981", "meeting"),
        ("google meet code: xkd-pqrs-tuv", "meeting"),
        ("add me on discord, it's pixelfox#4821", "messenger"),
        ("kakao: minji_k", "messenger"),
        ("me chama no whats", "messenger"),
        ("pásame tu número", "off_platform_request"),
        ("gib mir deine Handynummer", "off_platform_request"),
        ("apna number bhejo", "off_platform_request"),
        ("trabajemos por fuera y nos ahorramos la comisión", "off_platform_request"),
        ("contrátame en mi web www.andreadiseno.com", "link"),
    ],
)
def test_finds_new_kinds(text: str, kind: ContactDetailsKind) -> None:
    assert kind in [hit.kind for hit in find_contact_details(text)]


@pytest.mark.parametrize(
    "text",
    [
        "IBAN GB82 WEST 1234 5698 7654 33",  # checksum off by one
        "integrate PayPal checkout in my Shopify store",
        "I won't share my number, sorry",
        "no comparto mi número, seguimos aquí",
        "0xFF & 0x0F = 0x0F",
    ],
)
def test_hard_negatives(text: str) -> None:
    assert find_contact_details(text) == []


# --- split across messages -----------------------------------------------------------


def test_split_detail_names_the_messages_it_joins() -> None:
    earlier = [EarlierMessage("m1", "hello!"), EarlierMessage("m2", "kat.h")]
    split = find_split_contact_details(earlier, "@protonmail.com")
    assert split is not None
    assert split.kind == "email"
    assert split.joins == ("m2",)


def test_split_ignores_unrelated_numbers() -> None:
    earlier = [EarlierMessage("m1", "order 4471")]
    assert find_split_contact_details(earlier, "arrives 2209") is None


def test_a_detail_already_whole_in_an_earlier_message_is_not_joined() -> None:
    earlier = [EarlierMessage("m1", "call me on +44 7911 123456")]
    assert find_split_contact_details(earlier, "thanks") is None


def test_a_handle_alone_completes_the_invitation_before_it() -> None:
    earlier = [EarlierMessage("m1", "the draft is up"), EarlierMessage("m2", "add me on telegram")]
    split = find_split_contact_details(earlier, "@marta_ux")
    assert split is not None
    assert split.joins == ("m2",)
    # A plain word is not a handle, and a handle after no invitation is a mention.
    assert find_split_contact_details(earlier, "thanks") is None
    assert find_split_contact_details(earlier[:1], "@marta_ux") is None


def test_a_passcode_completes_a_meeting_id_given_before() -> None:
    earlier = [EarlierMessage("m1", "zoom id 845 2291 0037")]
    split = find_split_contact_details(earlier, "passcode 661244")
    assert split is not None
    assert split.kind == "meeting"
    assert find_split_contact_details(earlier, "see you then") is None


def test_a_detail_given_whole_before_is_not_joined_again() -> None:
    earlier = [EarlierMessage("m1", "my email is marta.k")]
    assert find_split_contact_details(earlier, "at gmail dot com") is not None
    earlier = [EarlierMessage("m1", "call me on +1 917")]
    assert find_split_contact_details(earlier, "288 4410") is not None


# --- evaluation ------------------------------------------------------------------------


def test_held_out_figures_are_computed() -> None:
    records = load(DATA / "heldout.jsonl")
    figures = evaluate_messages(records)
    assert sum(figures.positives.values()) + sum(figures.negatives.values()) == len(records)
    assert set(figures.positives) >= {"phone", "email", "messenger", "payment", "meeting"}
    print(f"held-out recall {figures.recall:.3f}, FP {figures.false_positive_rate:.3f}")
    split = evaluate_split(load(DATA / "heldout_split.jsonl"))
    assert sum(split.positives.values()) > 0


def test_development_set_recall_floor() -> None:
    figures = evaluate_messages(load(DATA / "dev.jsonl"))
    assert figures.recall >= 0.95, figures.missed_texts
    assert figures.false_positive_rate <= 0.02, figures.flagged_texts


def test_corpus_is_large_enough() -> None:
    total = sum(len(load(DATA / f"{part}.jsonl")) for part in ("dev", "heldout"))
    assert total >= 1000


# --- layering --------------------------------------------------------------------------


def test_moderation_imports_none_of_the_service_packages() -> None:
    forbidden = {"server", "signaling", "recorder"}
    for path in (ROOT / "moderation").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_spelled_within_counts_the_overlap_with_each_spelled_span() -> None:
    mapping = NormalisedText("", None, ((2, 5), (8, 9), (12, 20)))
    assert mapping.spelled_within(0, 30) == 3 + 1 + 8
    assert mapping.spelled_within(4, 13) == 1 + 1 + 1
    assert mapping.spelled_within(5, 8) == 0
    assert mapping.spelled_within(19, 25) == 1
