"""The buyer's join link: a signed token bound to one call and one buyer, short-lived.

The token is useless to anyone else: the join page and its JSON twin also require the
visitor to be signed in as that buyer. After the call ended the link still answers (the
call's final state); before that an expired link answers 410.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from server.calls.errors import JoinLinkError

SALT: Final = "join"
MAX_TOKEN_CHARS: Final = 512


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def make_join_token(secret_key: str, *, call_id: str, buyer_id: str) -> str:
    return _serializer(secret_key).dumps({"call": call_id, "buyer": buyer_id})


def join_path(call_id: str, token: str) -> str:
    return f"/calls/{quote(call_id, safe='')}/join?token={quote(token, safe='')}"


def check_join_token(
    secret_key: str, token: str, *, call_id: str, user_id: str, ttl_seconds: int
) -> bool:
    """True if the token is good for this call and user; False if good but expired.

    Raises ``JoinLinkError`` for a forged, mangled or other person's or call's token.
    """
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise JoinLinkError("This join link is not valid.")
    serializer = _serializer(secret_key)
    expired = False
    try:
        payload = serializer.loads(token, max_age=ttl_seconds)
    except SignatureExpired as exc:
        # The signature is good; still check the binding so another person's expired
        # link reads as invalid, not expired.
        try:
            payload = serializer.load_payload(exc.payload) if exc.payload is not None else None
        except BadSignature:
            payload = None
        expired = True
    except BadSignature:
        raise JoinLinkError("This join link is not valid.") from None
    if not isinstance(payload, dict) or payload.get("call") != call_id:
        raise JoinLinkError("This join link is not valid.")
    if payload.get("buyer") != user_id:
        raise JoinLinkError("This join link is for another account.")
    return not expired
