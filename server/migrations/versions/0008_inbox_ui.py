"""inbox: read markers per person and thread; calls: connected duration

Revision ID: 0008_inbox_ui
Revises: 0007_sessions
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from signaling.call_duration import LINK_EVENT_KINDS, LinkMark, call_duration

revision: str = "0008_inbox_ui"
down_revision: str | None = "0007_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "thread_reads",
        sa.Column("thread_id", sa.String(128), sa.ForeignKey("threads.id"), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("duration_seconds", sa.Float(), nullable=True))
    _backfill_durations()


def _backfill_durations() -> None:
    """Calls that ended before this revision get their duration by the same rule as new
    ones (signaling.call_duration, a pure function of stored rows). Calls cut off by a
    crash (interrupted) keep none: their end time is when the service came back."""
    bind = op.get_bind()
    calls = sa.table(
        "calls",
        sa.column("id", sa.String),
        sa.column("connected_at", sa.DateTime(timezone=True)),
        sa.column("ended_at", sa.DateTime(timezone=True)),
        sa.column("interrupted", sa.Boolean),
        sa.column("duration_seconds", sa.Float),
    )
    events = sa.table(
        "call_events",
        sa.column("call_id", sa.String),
        sa.column("kind", sa.String),
        sa.column("user_id", sa.String),
        sa.column("at", sa.DateTime(timezone=True)),
    )
    rows = bind.execute(
        sa.select(calls.c.id, calls.c.connected_at, calls.c.ended_at).where(
            calls.c.connected_at.is_not(None),
            calls.c.ended_at.is_not(None),
            calls.c.interrupted.is_(False),
        )
    ).all()
    for call_id, connected_at, ended_at in rows:
        marks = [
            mark
            for kind, user_id, when in bind.execute(
                sa.select(events.c.kind, events.c.user_id, events.c.at).where(
                    events.c.call_id == call_id, events.c.kind.in_(LINK_EVENT_KINDS)
                )
            ).all()
            if (mark := LinkMark.from_event(kind, user_id, when)) is not None
        ]
        duration = call_duration(connected_at, ended_at, marks)
        if duration is not None:
            bind.execute(
                calls.update()
                .where(calls.c.id == call_id)
                .values(duration_seconds=duration.total_seconds())
            )


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("duration_seconds")
    op.drop_table("thread_reads")
