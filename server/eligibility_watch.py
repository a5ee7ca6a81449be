"""Tells live-call owners that facts behind eligibility changed (order, block, restriction).

Route handlers publish after they commit; the call service subscribes and re-checks the
live calls the change touches, ending any that stopped being eligible.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

Listener = Callable[["EligibilityChange"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class EligibilityChange:
    thread_ids: frozenset[str] = field(default_factory=frozenset)
    user_ids: frozenset[str] = field(default_factory=frozenset)


class EligibilityWatch:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def changed(
        self, *, thread_ids: Iterable[str] = (), user_ids: Iterable[str] = ()
    ) -> None:
        change = EligibilityChange(frozenset(thread_ids), frozenset(user_ids))
        for listener in list(self._listeners):
            await listener(change)
