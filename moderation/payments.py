"""Payment outside the platform: bank accounts, wallets and payment services.

IBANs are checked with python-stdnum (country length and the ISO 7064 mod 97 checksum);
Bitcoin addresses by their Base58Check or Bech32 checksum; Ethereum and Tron addresses
by their format, and a Tron address without the crypto word next to it also by its
checksum. Payment services count with a request to pay through them, never as a topic
("integrate PayPal checkout").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from typing import Final

from stdnum import iban

from moderation.first_characters import compile_guarded
from moderation.keywords import Keywords, Span, windows

_IBAN_CANDIDATE: Final = re.compile(
    r"(?<![a-z0-9])[a-z]{2}[0-9]{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,4})?(?![a-z0-9])"
)
_BASE58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_ADDRESS: Final = compile_guarded(
    r"(?<![A-Za-z0-9])[13T][1-9A-HJ-NP-Za-km-z]{25,34}(?![A-Za-z0-9])"
)
_BECH32_ADDRESS: Final = compile_guarded(r"(?<![a-z0-9])bc1[ac-hj-np-z02-9]{11,71}(?![a-z0-9])")
_ETHEREUM_ADDRESS: Final = compile_guarded(r"(?<![A-Za-z0-9])0x[0-9a-fA-F]{40}(?![A-Za-z0-9])")

# Services people move a payment to. "wise" and "pix" are words too, so they need a
# payment word near them (see _SERVICE_REQUEST).
_SERVICES: Final = (
    r"(?:pay ?pal|paypal\.me|payoneer|venmo|zelle|cash ?app|skrill|neteller|revolut|wise"
    r"|transferwise|western union|moneygram|bizum|pix|upi|paytm|phonepe|google ?pay|gpay"
    r"|easypaisa|jazzcash|m-?pesa|alipay|wechat ?pay|mercado ?pago|nequi|daviplata"
    r"|interac|e-?transfer|sepa|swift|bank transfer|wire transfer|crypto|usdt|bitcoin|btc)"
)
_PAY_WORDS: Final = (
    r"(?:pay|paid|paying|payment|send|sent|transfer|wire|invoice|deposit|money|accept|take"
    r"|pague|págame|pagame|paga|pagar|pago|pagamento|paie|payer|régler|regler|paiement"
    r"|zahl|zahle|zahlen|bezahl\w*|überweis\w*|uberweis\w*|kar do|bhej|bhejo|faz|fazer|manda"
    r"|transfiere|transfiéreme|transfiereme|virement|chave|account|conta|cuenta|konto|compte)"
)
# A payment service named as the work itself.
_SERVICE_AS_TOPIC: Final = re.compile(
    r" ?(?:checkout|button|buttons|integration|integrations|api|sdk|gateway|plugin|option"
    r"|options|donate|subscription|subscriptions|webhook|webhooks|sandbox|ipn|express|plus"
    r"|support|account setup|setup)\b"
)
_SERVICE_TOPIC_BEFORE: Final = re.compile(
    r"\b(?:integrate|integrating|integration of|set ?up|setup|add|adding|implement|connect"
    r"|stripe and|stripe or|support for|accept payments (?:via|with))\b[^.!?\n]{0,25}$"
)
_SERVICE_NAME: Final = re.compile(_SERVICES)
_SERVICE_REQUEST: Final = compile_guarded(
    rf"\b{_PAY_WORDS}\b[^.!?\n]{{0,40}}?\b{_SERVICES}\b|\b{_SERVICES}\b[^.!?\n]{{0,40}}?\b{_PAY_WORDS}\b"
    rf"|\b{_SERVICES} ?(?:me|him|her)\b"
    r"|\b(?:pay ?pal|venmo|zelle|cash ?app|revolut|skrill|payoneer|paytm|upi|pix)"
    r"\b[ :=-]{0,3}(?:@|\$|[a-z0-9._-]+@|\+?[0-9])"
    r"|\bpay ?pal (?:friends|f&f|ff)\b|\bfriends (?:and|&) family\b"
    r"|\b(?:chave|key) pix\b|\bpix\b[^.!?\n]{0,20}\b(?:cpf|cnpj|chave)\b"
)
_UPI_NAME_MAX: Final = 40
_UPI_HANDLE_MAX: Final = 12
_UPI_ID: Final = re.compile(
    rf"(?<![a-z0-9._-])[a-z0-9._-]{{2,{_UPI_NAME_MAX}}}@(?:ok(?:axis|sbi|hdfcbank|icici)|ybl|ibl|axl|paytm|upi"
    r"|apl|yapl|ptyes|ptsbi|pthdfc|waicici|icici|sbi|hdfcbank|axisbank|kotak|barodampay)\b"
)
# The keywords of the detector's one scan of the message (see moderation.keywords).
KEYWORDS: Final = {
    # Every service request names a service (or "friends and family").
    "payment.service": Keywords(
        anywhere=(
            "paypal", "pay pal", "payoneer", "venmo", "zelle", "cashapp", "cash app", "skrill",
            "neteller", "revolut", "wise", "western union", "moneygram", "bizum", "pix", "upi",
            "paytm", "phonepe", "googlepay", "google pay", "gpay", "easypaisa", "jazzcash",
            "m-pesa", "mpesa", "alipay", "wechatpay", "wechat pay", "mercadopago",
            "mercado pago", "nequi", "daviplata", "interac", "transfer", "sepa", "swift",
            "crypto", "usdt", "bitcoin", "btc", "friends",
        )
    ),
    "payment.at_sign": Keywords(anywhere=("@",)),
    "payment.crypto": Keywords(
        words=(
            "btc", "bitcoin", "eth", "ether", "ethereum", "usdt", "usdc", "tether", "trc20",
            "trc-20", "erc20", "erc-20", "bep20", "bep-20", "wallet", "crypto", "binance",
            "tron", "trx", "sol", "solana", "ltc", "litecoin",
        )
    ),
}  # fmt: skip
# How far a service request reaches before and after the service's name.
_SERVICE_BEFORE: Final = 60
_SERVICE_AFTER: Final = 100


def find_payments(
    normalised: str, original: str, keywords_found: Mapping[str, list[Span]]
) -> Iterator[tuple[int, int, bool]]:
    """Payment details and requests: (start, end, in_original) spans.

    IBANs, UPI ids and service requests are found in the normalised text; wallet
    addresses, whose letter case carries their checksum, in the original.
    ``keywords_found`` is the scan of :data:`KEYWORDS` over ``normalised``.
    """
    # An IBAN starts with its country's two letters and the two check digits. One scan
    # by the regex engine: a loop in Python over every digit group of a digit-dense
    # message cost more than all the other payment rules together.
    for match in _IBAN_CANDIDATE.finditer(normalised):
        compact = match.group().replace(" ", "").upper()
        if _passes_mod_97(compact) and iban.is_valid(compact):
            yield match.start(), match.end(), False
    # A UPI id is a name of at most 40 characters, "@" and a bank's handle.
    at_signs = keywords_found.get("payment.at_sign", ())
    for low, high in windows(at_signs, len(normalised), _UPI_NAME_MAX + 1, _UPI_HANDLE_MAX + 2):
        for match in _UPI_ID.finditer(normalised, low, high):
            yield match.start(), match.end(), False
    services = keywords_found.get("payment.service", ())
    for low, high in windows(services, len(normalised), _SERVICE_BEFORE, _SERVICE_AFTER):
        for match in _SERVICE_REQUEST.finditer(normalised, low, high):
            if not _names_service_as_topic(normalised, match):
                yield match.start(), match.end(), False
    crypto_context = bool(keywords_found.get("payment.crypto"))
    for match in _BASE58_ADDRESS.finditer(original):
        if _base58check_valid(match.group()) or crypto_context:
            yield match.start(), match.end(), True
    lowered = original.lower()
    if "bc1" in lowered:
        for match in _BECH32_ADDRESS.finditer(lowered):
            if _bech32_valid(match.group()):
                yield match.start(), match.end(), True
    if "0x" in original:
        for match in _ETHEREUM_ADDRESS.finditer(original):
            yield match.start(), match.end(), True


def _passes_mod_97(compact: str) -> bool:
    """The ISO 7064 mod 97 check every IBAN passes, done before python-stdnum's full
    validation, whose registry look-ups cost far more: most candidates fail here."""
    rearranged = compact[4:] + compact[:4]
    return int(rearranged.translate(_BASE_36_DIGITS)) % 97 == 1


# A letter of an IBAN counts as its base-36 value written in decimal: A is 10, Z is 35.
_BASE_36_DIGITS: Final = {ord("A") + index: str(10 + index) for index in range(26)}


def _names_service_as_topic(normalised: str, match: re.Match[str]) -> bool:
    before = normalised[max(0, match.start() - 40) : match.start()]
    if _SERVICE_TOPIC_BEFORE.search(before + " ") is not None:
        return True
    window = normalised[match.start() : match.end() + 30]
    service = _SERVICE_NAME.search(window)
    return service is not None and _SERVICE_AS_TOPIC.match(window, service.end()) is not None


def _base58check_valid(address: str) -> bool:
    value = 0
    for character in address:
        index = _BASE58.find(character)
        if index < 0:
            return False
        value = value * 58 + index
    leading_zeros = len(address) - len(address.lstrip("1"))
    raw = b"\x00" * leading_zeros + value.to_bytes((value.bit_length() + 7) // 8, "big")
    if len(raw) != 25:
        return False
    payload, checksum = raw[:-4], raw[-4:]
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] == checksum


_BECH32_CHARSET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATOR: Final = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _bech32_valid(address: str) -> bool:
    """BIP 173 (bech32) and BIP 350 (bech32m) checksums."""
    human, _, data_part = address.rpartition("1")
    if not human or len(data_part) < 6:
        return False
    data = [_BECH32_CHARSET.find(character) for character in data_part]
    if min(data) < 0:
        return False
    values = [ord(c) >> 5 for c in human] + [0] + [ord(c) & 31 for c in human] + data
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = ((checksum & 0x1FFFFFF) << 5 ^ value) ^ _BECH32_TOP_XOR[top]
    return checksum in (1, 0x2BC830A3)


def _generators_for(top: int) -> int:
    """The generators BIP 173 XORs in for the five bits shifted out of the checksum."""
    mixed = 0
    for bit, generator in enumerate(_BECH32_GENERATOR):
        if (top >> bit) & 1:
            mixed ^= generator
    return mixed


# One look-up per character instead of a loop over the five generators.
_BECH32_TOP_XOR: Final = tuple(_generators_for(top) for top in range(32))
