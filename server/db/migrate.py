"""Apply the alembic migrations (at start-up and from the command line)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_to_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


# Any fixed 64-bit number: the advisory lock nodes take to migrate one at a time.
MIGRATION_LOCK_KEY = 0x1B0C_A11_0001


async def upgrade_to_head_async(database_url: str) -> None:
    """Migrate to head. On PostgreSQL, under an advisory lock: nodes of a cluster that
    start at the same moment on an empty database migrate it once, one after the other
    (the later ones find it at head)."""
    if not database_url.startswith("postgresql"):
        # env.py runs its own event loop; keep it off the service's loop.
        await asyncio.to_thread(upgrade_to_head, database_url)
        return
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                await asyncio.to_thread(upgrade_to_head, database_url)
            finally:
                await conn.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
    finally:
        await engine.dispose()
