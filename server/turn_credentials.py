"""Short-lived TURN credentials for browsers, minted per user (DESIGN.md section 8, "TURN").

coturn's REST-style authentication (``use-auth-secret`` with ``static-auth-secret``):
the username is ``<expiry unix time>:<user id>`` and the password is
base64(HMAC-SHA1(secret, username)). coturn recomputes the password from the username
and refuses it once the expiry has passed, so nothing is stored and no call to coturn is
needed to mint them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    urls: tuple[str, ...]
    username: str
    credential: str
    expires_at: datetime


def turn_credentials(
    *, urls: Sequence[str], secret: str, user_id: str, ttl_seconds: int, now: datetime
) -> TurnCredentials:
    expires_at = now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=ttl_seconds)
    username = f"{int(expires_at.timestamp())}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(
        urls=tuple(urls),
        username=username,
        credential=base64.b64encode(digest).decode("ascii"),
        expires_at=expires_at,
    )
