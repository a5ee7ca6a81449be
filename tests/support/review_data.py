"""Seeding ended calls with stored recordings, as the recording service leaves them."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from server.appkeys import DB, RECORDING_STORAGE
from server.clock import utcnow
from server.db.models import Call, Recording

MEDIA_BYTES = bytes(range(256)) * 40  # 10 KiB, recognisable at every offset


async def seed_reviewable_call(
    app: web.Application,
    *,
    call_id: str,
    thread_id: str,
    seller_id: str,
    buyer_id: str,
    created_at: datetime | None = None,
    sampled: bool = True,
    mandatory: list[str] | None = None,
) -> list[str]:
    """An ended call in the review queue with one stored recording per participant."""
    created = created_at or utcnow() - timedelta(hours=1)
    store = app[RECORDING_STORAGE]
    recording_ids = []
    async with app[DB]() as session, session.begin():
        session.add(
            Call(
                id=call_id,
                thread_id=thread_id,
                seller_id=seller_id,
                buyer_id=buyer_id,
                state="ended",
                end_reason="hung_up",
                ended_by=seller_id,
                created_at=created,
                connected_at=created + timedelta(seconds=5),
                ended_at=created + timedelta(minutes=3),
                review_required=sampled or bool(mandatory),
                sampled=sampled,
                sample_rate=0.1,
                sample_key_id="k1",
                sample_draw=0.05 if sampled else 0.5,
                mandatory_reasons=mandatory or [],
            )
        )
        for participant in (seller_id, buyer_id):
            key = f"{call_id}/{participant}.webm"
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{participant}.webm"
                path.write_bytes(MEDIA_BYTES)
                await store.put(key, path)
            row = Recording(
                call_id=call_id,
                participant_id=participant,
                storage_key=key,
                state="finalised",
                mime_type="video/webm",
                video_codec="vp8",
                audio_codec="opus",
                start_offset=0.0,
                duration=180.0,
                size=len(MEDIA_BYTES),
                sha256="0" * 64,
                created_at=created,
            )
            session.add(row)
            await session.flush()
            recording_ids.append(row.id)
    return recording_ids
