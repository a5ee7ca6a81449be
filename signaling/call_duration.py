"""How long a call lasted: one rule, used by the thread, the call screen and the review queue.

A call lasts from the moment it became active (both people connected) to its end, minus
the time a participant was lost (between a ``reconnecting`` event and their
``reconnected``, or the end): that is the reconnect grace, dead air nobody talked in.
Ringing and connecting never count. Pure: the caller loads the call's stored events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from signaling.call_state import CallEventKind


@dataclass(frozen=True, slots=True)
class LinkMark:
    """A participant lost (``reconnecting``) or back (``reconnected``) at ``at``."""

    user_id: str
    at: datetime
    lost: bool

    @classmethod
    def from_event(cls, kind: str, user_id: str | None, at: datetime) -> LinkMark | None:
        """The mark a stored call event makes, or ``None`` for other kinds of event."""
        if user_id is None:
            return None
        if kind == CallEventKind.RECONNECTING.value:
            return cls(user_id, at, lost=True)
        if kind == CallEventKind.RECONNECTED.value:
            return cls(user_id, at, lost=False)
        return None


LINK_EVENT_KINDS = (CallEventKind.RECONNECTING.value, CallEventKind.RECONNECTED.value)
"""The event kinds ``call_duration`` reads; load only these."""


def call_duration(
    active_at: datetime | None, ended_at: datetime | None, marks: Iterable[LinkMark]
) -> timedelta | None:
    """Connected time of an ended call; ``None`` if it never became active (or has no end).

    Time in which either participant was lost counts once, however many were lost.
    """
    if active_at is None or ended_at is None:
        return None
    if ended_at <= active_at:
        return timedelta(0)
    lost: set[str] = set()
    gap_since: datetime | None = None
    dead = timedelta(0)
    for mark in sorted(marks, key=lambda m: m.at):
        at = min(max(mark.at, active_at), ended_at)
        if mark.lost:
            if not lost:
                gap_since = at
            lost.add(mark.user_id)
        elif mark.user_id in lost:
            lost.discard(mark.user_id)
            if not lost and gap_since is not None:
                dead += at - gap_since
                gap_since = None
    if lost and gap_since is not None:
        dead += ended_at - gap_since
    return max(timedelta(0), ended_at - active_at - dead)
