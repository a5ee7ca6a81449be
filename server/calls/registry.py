"""The live calls on this node, and the claims that keep one live call per thread and person.

A claim is taken without an ``await`` between check and claim, so two racing
``start_call``s on this node cannot both pass; across nodes the database's one-live-call
indexes decide (``server.calls.placement``).
"""

from __future__ import annotations

from collections.abc import Iterable

from server.calls.live_call import LiveCall


def _claim_keys(thread_id: str, user_ids: Iterable[str]) -> tuple[str, ...]:
    return (f"thread:{thread_id}", *(f"user:{u}" for u in user_ids))


class LiveCallRegistry:
    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._claims: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._calls)

    def get(self, call_id: str) -> LiveCall | None:
        return self._calls.get(call_id)

    def of_user(self, user_id: str) -> LiveCall | None:
        """The live (or being set up) call ``user_id`` takes part in."""
        call_id = self._claims.get(f"user:{user_id}")
        return self._calls.get(call_id) if call_id else None

    def calls(self) -> list[LiveCall]:
        """A snapshot: callers await between calls, and calls end meanwhile."""
        return list(self._calls.values())

    def claim(self, call_id: str, thread_id: str, user_ids: Iterable[str]) -> bool:
        """Claim the thread and the people for ``call_id``; False if any is taken."""
        keys = _claim_keys(thread_id, user_ids)
        if any(key in self._claims for key in keys):
            return False
        for key in keys:
            self._claims[key] = call_id
        return True

    def release(self, call_id: str) -> None:
        for key in [k for k, owner in self._claims.items() if owner == call_id]:
            del self._claims[key]

    def add(self, live: LiveCall) -> None:
        self._calls[live.call_id] = live

    def remove(self, live: LiveCall) -> None:
        """Forget ``live`` and free its claims (a newer call of the same id stays)."""
        if self._calls.get(live.call_id) is live:
            del self._calls[live.call_id]
        self.release(live.call_id)
