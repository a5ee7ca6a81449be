"""Phone-number validation with Google's libphonenumber metadata (the ``phonenumbers`` package).

The detector finds digit runs; this module says whether a run is a number some country
actually assigns, by its length and prefixes, instead of counting digits. A message
carries no country, so a national number is tried against the regions the marketplace's
people write from; an international one ("+44 ...", "0044 ...") names its own.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import phonenumbers

# Regions tried for a number written without its country code, by its shape. A number
# with a trunk prefix ("0...") is tried where national numbers start with one; one without
# is tried where they do not. The lists are short on purpose: every region is one more
# parse per candidate, and a number valid only in a region nobody here writes from is
# more likely an order number.
TRUNK_PREFIX_REGIONS: Final = (
    "GB", "DE", "FR", "IN", "PK", "AU", "BR", "NL", "BE", "ZA", "NG", "PH", "IR", "TR",
    "ID", "IE", "NZ", "AR", "EG", "BD", "KR", "JP", "UA", "KE", "SA", "AE", "CO",
)  # fmt: skip
NO_TRUNK_PREFIX_REGIONS: Final = ("US", "IN", "ES", "PT", "BR", "CN", "MX", "IT", "PK")
_MIN_DIGITS: Final = 7
_MAX_DIGITS: Final = 15  # E.164


@lru_cache(maxsize=4096)
def is_valid_phone_number(digits: str, international: bool) -> bool:
    """True when ``digits`` (ASCII digits only) form a number a country assigns.

    ``international`` says the number was written after "+" (or "00"), so its first
    digits are a country calling code.
    """
    if not digits.isdigit() or not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
        return False
    if international or digits.startswith("00"):
        return _valid("+" + digits.removeprefix("00"), None)
    return any(_valid(digits, region) for region in _regions(digits))


@lru_cache(maxsize=4096)
def is_possible_phone_number(digits: str, international: bool) -> bool:
    """Like :func:`is_valid_phone_number`, but only by length: for numbers with a cue."""
    if not digits.isdigit() or not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
        return False
    if international or digits.startswith("00"):
        return _possible("+" + digits.removeprefix("00"), None)
    return any(_possible(digits, region) for region in _regions(digits))


def _regions(digits: str) -> tuple[str, ...]:
    return TRUNK_PREFIX_REGIONS if digits.startswith("0") else NO_TRUNK_PREFIX_REGIONS


def _parse(number: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None


def _valid(number: str, region: str | None) -> bool:
    parsed = _parse(number, region)
    return parsed is not None and phonenumbers.is_valid_number(parsed)


def _possible(number: str, region: str | None) -> bool:
    parsed = _parse(number, region)
    return parsed is not None and phonenumbers.is_possible_number(parsed)


def _load_metadata() -> None:
    """Loads and compiles the metadata of the regions tried for national numbers.

    libphonenumber reads a region's metadata (and compiles its patterns) the first time a
    number is parsed for it, about a millisecond each: done here, at import, it never
    falls on the event loop in the middle of a message.
    """
    for region in {*TRUNK_PREFIX_REGIONS, *NO_TRUNK_PREFIX_REGIONS}:
        parsed = _parse("0123456789", region)
        if parsed is not None:
            phonenumbers.is_valid_number(parsed)
            phonenumbers.is_possible_number(parsed)


_load_metadata()
