"""Which finished calls a compliance reviewer sees (DESIGN.md section 6).

The draw is a keyed hash of the call id: reproducible for an audit (same key and call id,
same draw) and unpredictable to users (without the secret nobody can tell which calls
will be reviewed). The decision keeps its inputs (rate, key id, draw) so it can be
re-checked later. Calls with a risk signal are always reviewed. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Final

DRAW_ALGORITHM: Final = "hmac-sha256/v1"
_DOMAIN: Final = b"inboxcall/review-sample/v1\x00"
_MIN_SECRET_BYTES: Final = 16
_DRAW_BITS: Final = 53  # a float's mantissa: every draw is exactly representable


class MandatoryReviewReason(StrEnum):
    CONTACT_DETAILS_IN_CHAT = "contact_details_in_chat"
    REPORTED_BY_PARTICIPANT = "reported_by_participant"


@dataclass(frozen=True, slots=True)
class RiskSignals:
    """What is known about a call's risk when it ends.

    ``other`` carries further risk codes (e.g. from a future detector); each is a
    mandatory reason of its own.
    """

    contact_details_in_chat: bool = False
    reported_by_participant: bool = False
    other: frozenset[str] = field(default_factory=frozenset)

    def reasons(self) -> tuple[str, ...]:
        found: list[str] = []
        if self.contact_details_in_chat:
            found.append(MandatoryReviewReason.CONTACT_DETAILS_IN_CHAT.value)
        if self.reported_by_participant:
            found.append(MandatoryReviewReason.REPORTED_BY_PARTICIPANT.value)
        found += sorted(self.other)
        return tuple(found)


@dataclass(frozen=True, slots=True)
class ReviewSamplingDecision:
    """The decision and everything needed to reproduce it (store all of it)."""

    call_id: str
    sampled: bool
    rate: float
    key_id: str
    draw: float
    drawn: bool  # the random draw alone selected the call (draw < rate)
    mandatory_reasons: tuple[str, ...]
    algorithm: str = DRAW_ALGORITHM

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mandatory_reasons"] = list(self.mandatory_reasons)
        return data


class UnknownSamplingKeyError(KeyError):
    """A decision names a key id this sampler does not hold."""


class ReviewSampler:
    """Draws review samples with HMAC-SHA256 under the key ``key_id``.

    ``retired_keys`` (key id -> secret) lets ``verify`` re-check decisions made under
    keys that have since been rotated out.
    """

    def __init__(
        self,
        rate: float,
        key_id: str,
        secret: bytes,
        *,
        retired_keys: Mapping[str, bytes] | None = None,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"review sample rate must be within [0, 1], got {rate}")
        if not key_id:
            raise ValueError("a sampling key needs an id")
        keys = dict(retired_keys or {})
        keys[key_id] = secret
        for kid, value in keys.items():
            if len(value) < _MIN_SECRET_BYTES:
                raise ValueError(f"sampling key {kid!r} is shorter than {_MIN_SECRET_BYTES} bytes")
        self.rate = rate
        self.key_id = key_id
        self._keys = keys

    def draw(self, call_id: str, key_id: str | None = None) -> float:
        """The call's draw in [0, 1) under ``key_id`` (default: the current key)."""
        kid = self.key_id if key_id is None else key_id
        secret = self._keys.get(kid)
        if secret is None:
            raise UnknownSamplingKeyError(kid)
        mac = hmac.new(secret, _DOMAIN + call_id.encode("utf-8"), hashlib.sha256).digest()
        return (int.from_bytes(mac[:8], "big") >> (64 - _DRAW_BITS)) / (1 << _DRAW_BITS)

    def decide(self, call_id: str, signals: RiskSignals | None = None) -> ReviewSamplingDecision:
        reasons = (signals or RiskSignals()).reasons()
        draw = self.draw(call_id)
        drawn = draw < self.rate
        return ReviewSamplingDecision(
            call_id=call_id,
            sampled=drawn or bool(reasons),
            rate=self.rate,
            key_id=self.key_id,
            draw=draw,
            drawn=drawn,
            mandatory_reasons=reasons,
        )

    def verify(self, decision: ReviewSamplingDecision) -> bool:
        """Re-derive a stored decision from its inputs (for audits)."""
        if decision.algorithm != DRAW_ALGORITHM:
            return False
        draw = self.draw(decision.call_id, decision.key_id)
        drawn = draw < decision.rate
        return (
            draw == decision.draw
            and drawn == decision.drawn
            and decision.sampled == (drawn or bool(decision.mandatory_reasons))
        )
