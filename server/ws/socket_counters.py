"""What the call WebSocket layer counts, for the metrics to read at scrape time.

Plain integers bumped where the event happens (a socket opening, a dropped slow client,
a message over the rate limit): never per media frame, and no metrics library here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SocketCounters:
    opened: int = 0
    refused_too_many: int = 0
    """Sockets refused because their user already had the most allowed."""
    slow_consumer_closes: int = 0
    """Sockets closed with 4002: their client did not read fast enough."""
    rate_limited_messages: int = 0
    """Messages dropped (answered ``rate_limited``) for exceeding the rate limit."""
    rate_limit_closes: int = 0
    """Sockets closed for flooding past the rate limit's strikes."""
