"""Typed application state (aiohttp ``AppKey``s), shared by every route module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.settings import Settings

if TYPE_CHECKING:
    from server.eligibility_watch import EligibilityWatch

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", async_sessionmaker[AsyncSession])
ELIGIBILITY_WATCH: web.AppKey[EligibilityWatch] = web.AppKey("eligibility_watch")

# Named async checks that /readyz runs besides the database (the recording storage...).
READINESS_CHECKS = web.AppKey("readiness_checks", dict[str, Callable[[], Awaitable[None]]])
