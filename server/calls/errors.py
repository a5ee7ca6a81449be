"""Refusals of the call service, with the WebSocket protocol's stable error codes.

No web framework here: ``server.ws.dispatch`` turns these into ``error`` replies and
``server.api.calls`` into HTTP statuses.
"""

from __future__ import annotations

from collections.abc import Iterable

from signaling.ws_protocol import ErrorCode


class CallError(Exception):
    """A request the call service refused; ``code`` is what the client branches on."""

    def __init__(
        self, code: ErrorCode, message: str, reasons: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reasons = tuple(reasons)


def no_such_call() -> CallError:
    # The same answer for a call that does not exist and one that is not yours.
    return CallError(ErrorCode.NOT_FOUND, "no such call")


def no_such_thread() -> CallError:
    return CallError(ErrorCode.NOT_FOUND, "no such thread")


class JoinLinkError(Exception):
    """A join link that cannot be used; ``expired`` distinguishes 410 from 403."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.expired = expired
