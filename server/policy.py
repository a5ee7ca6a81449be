"""Review and retention policy: settings, overridden at run time by an admin (audited)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import RuntimeSetting
from server.settings import Settings

POLICY_KEYS = ("review_sample_rate", "retention_days", "reviewed_clean_retention_days")


class PolicySettings(BaseModel):
    review_sample_rate: float
    retention_days: int
    reviewed_clean_retention_days: int


async def effective_policy(session: AsyncSession, settings: Settings) -> PolicySettings:
    values: dict[str, float | int] = {
        "review_sample_rate": settings.review_sample_rate,
        "retention_days": settings.retention_days,
        "reviewed_clean_retention_days": settings.reviewed_clean_retention_days,
    }
    rows = (
        await session.scalars(select(RuntimeSetting).where(RuntimeSetting.key.in_(POLICY_KEYS)))
    ).all()
    for row in rows:
        values[row.key] = float(row.value) if row.key == "review_sample_rate" else int(row.value)
    return PolicySettings.model_validate(values)
