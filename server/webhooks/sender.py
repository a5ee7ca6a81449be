"""Delivering the outbox: the serving process's owned task that posts due events.

Several nodes may share one PostgreSQL outbox: a sender claims a batch of due rows in one
short transaction (``FOR UPDATE SKIP LOCKED``, so two nodes never wait on or take the
same rows; SQLite has one writer and ignores the clause) and leases them. It posts them
with no transaction open, then writes each outcome only if it still holds the lease. A
sender that dies mid-batch leaves leases that simply run out: another sender, or this one
after a restart, takes the rows again. Delivery is therefore at least once, and the
receiver tells repeats apart by the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import utcnow
from server.db.models import WebhookEvent
from server.settings import Settings
from server.webhooks.outbox import DELIVERED, FAILED, PENDING
from server.webhooks.retry import (
    AttemptResult,
    DeliveryDecision,
    Outcome,
    RetryPolicy,
    after_attempt,
)
from server.webhooks.signing import SIGNATURE_HEADER, signature_header

log = logging.getLogger(__name__)

BATCH_SIZE = 20  # rows claimed, and posted concurrently, per round
KEEP_DELIVERED = timedelta(days=7)
KEEP_FAILED = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)
MAX_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: str
    type: str
    body: str
    attempts: int  # before this attempt
    window_started_at: datetime
    lease_token: str


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base_delay=timedelta(seconds=settings.webhook_retry_base_seconds),
        window=timedelta(hours=settings.webhook_retry_hours),
    )


class WebhookSender:
    def __init__(
        self,
        settings: Settings,
        db: async_sessionmaker[AsyncSession],
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not settings.webhook_url:
            raise ValueError("WebhookSender needs INBOXCALL_WEBHOOK_URL")
        self._url = settings.webhook_url
        self._secret = settings.webhook_secret.get_secret_value()
        self._timeout = settings.webhook_timeout_seconds
        self._poll = settings.webhook_poll_seconds
        self._policy = retry_policy(settings)
        # Long enough for a whole batch to be posted (they go concurrently) and recorded.
        self._lease = timedelta(seconds=2 * self._timeout + 5)
        self._db = db
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_prune: datetime | None = None
        self._stopping = False
        self._attempts_made = 0

    def start(self) -> None:
        if self._task is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"User-Agent": "inboxcall-webhooks/1"},
            )
            self._task = asyncio.create_task(self._run_forever(), name="webhook-sender")

    def wake(self) -> None:
        """Look for due events now (after a re-drive) instead of at the next poll."""
        self._wake.set()

    async def aclose(self) -> None:
        """Let the round in flight finish (its outcomes written, so a clean restart does
        not post them again), then stop; a round stuck past its lease is cancelled."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), self._lease.total_seconds())
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _run_forever(self) -> None:
        while not self._stopping:
            claimed = 0
            try:
                claimed = await self.run_once()
                await self._prune_now_and_then()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook sender round failed; retrying in %.1f s", self._poll)
            if claimed < BATCH_SIZE and not self._stopping:  # a full batch: more may be due
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
                self._wake.clear()

    async def run_once(self) -> int:
        """Claim the due events, post them, record each outcome; answers how many."""
        batch = await self._claim(utcnow())
        if batch:
            async with asyncio.TaskGroup() as group:
                for event in batch:
                    group.create_task(self._attempt(event), name=f"webhook-{event.id}")
        return len(batch)

    async def _claim(self, now: datetime) -> list[ClaimedEvent]:
        async with self._db() as session, session.begin():
            rows = (
                await session.scalars(
                    select(WebhookEvent)
                    .where(
                        WebhookEvent.state == PENDING,
                        WebhookEvent.next_attempt_at <= now,
                        or_(WebhookEvent.lease_until.is_(None), WebhookEvent.lease_until < now),
                    )
                    .order_by(WebhookEvent.next_attempt_at)
                    .limit(BATCH_SIZE)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            claimed: list[ClaimedEvent] = []
            for row in rows:
                row.lease_token = secrets.token_hex(8)
                row.lease_until = now + self._lease
                claimed.append(
                    ClaimedEvent(
                        id=row.id,
                        type=row.type,
                        body=row.body,
                        attempts=row.attempts,
                        window_started_at=row.window_started_at,
                        lease_token=row.lease_token,
                    )
                )
        return claimed

    @property
    def attempts_made(self) -> int:
        """POSTs this sender made since it started (every outcome)."""
        return self._attempts_made

    async def _attempt(self, event: ClaimedEvent) -> None:
        result = await self._post(event)
        self._attempts_made += 1
        now = utcnow()
        attempts = event.attempts + 1
        decision = after_attempt(
            result,
            attempts=attempts,
            window_started_at=event.window_started_at,
            now=now,
            policy=self._policy,
            jitter=self._jitter(),
        )
        await self._record(event, result, decision, attempts, now)

    async def _post(self, event: ClaimedEvent) -> AttemptResult:
        assert self._http is not None, "start() the sender first"
        body = event.body.encode()
        # Signed at each attempt: the receiver checks the time is recent.
        header = signature_header(self._secret, int(utcnow().timestamp()), body)
        try:
            async with self._http.post(
                self._url,
                data=body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
                # A redirect is not an answer: following a POST elsewhere could leak events.
                allow_redirects=False,
            ) as response:
                return AttemptResult(status=response.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return AttemptResult(error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])

    async def _record(
        self,
        event: ClaimedEvent,
        result: AttemptResult,
        decision: DeliveryDecision,
        attempts: int,
        now: datetime,
    ) -> None:
        values: dict[str, object] = {
            "attempts": attempts,
            "last_attempt_at": now,
            "last_status": result.status,
            "last_error": None if result.accepted else decision.reason[:MAX_ERROR_CHARS],
            "lease_token": None,
            "lease_until": None,
        }
        if decision.outcome is Outcome.DELIVERED:
            values.update(state=DELIVERED, delivered_at=now)
        elif decision.outcome is Outcome.FAILED:
            values.update(state=FAILED)
        else:
            assert decision.retry_at is not None
            values.update(next_attempt_at=decision.retry_at)
        async with self._db() as session, session.begin():
            written = await session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event.id, WebhookEvent.lease_token == event.lease_token)
                .values(**values)
            )
        if written.rowcount == 0:  # type: ignore[attr-defined]
            # Our lease ran out and another sender took the row: its outcome stands.
            log.warning("webhook %s: lease lost before the outcome was written", event.id)
        elif decision.outcome is Outcome.RETRY:
            assert decision.retry_at is not None
            log.info(
                "webhook %s (%s): %s; attempt %d, retry in %.1f s",
                event.id,
                event.type,
                decision.reason,
                attempts,
                (decision.retry_at - now).total_seconds(),
            )
        elif decision.outcome is Outcome.FAILED:
            log.error("webhook %s (%s): failed: %s", event.id, event.type, decision.reason)

    async def _prune_now_and_then(self) -> None:
        now = utcnow()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        await self.prune(now)

    async def prune(self, now: datetime) -> int:
        """Delivered events go after a week, failed ones 30 days after their last attempt:
        the table stays bounded when the host is gone for good. Answers how many went."""
        async with self._db() as session, session.begin():
            result = await session.execute(
                delete(WebhookEvent).where(
                    or_(
                        (WebhookEvent.state == DELIVERED)
                        & (WebhookEvent.delivered_at < now - KEEP_DELIVERED),
                        (WebhookEvent.state == FAILED)
                        & (WebhookEvent.last_attempt_at < now - KEEP_FAILED),
                    )
                )
            )
        return int(result.rowcount)  # type: ignore[attr-defined]
