"""cluster: nodes, call ownership with a fencing epoch, one live call per thread and person

Revision ID: 0009_cluster
Revises: 0003
Create Date: 2026-12-04 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_cluster"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "state IN ('ringing', 'connecting', 'active')"


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("owner_node", sa.String(64), nullable=True))
        batch.add_column(sa.Column("owner_epoch", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_calls_owner_node", "calls", ["owner_node"])
    # Before this revision only one node ever ran, and migrations run before it serves: a
    # row still live was left by a process that died. End such rows (as start-up would),
    # so that the one-live-call indexes below can be built.
    op.execute(
        "UPDATE calls SET state = 'ended', end_reason = 'server_shutdown', "
        "end_detail = 'interrupted', interrupted = TRUE, ended_at = created_at "
        "WHERE state IN ('ringing', 'connecting', 'active')"
    )
    for column in ("thread_id", "seller_id", "buyer_id"):
        op.create_index(
            f"uq_calls_live_{column}",
            "calls",
            [column],
            unique=True,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )


def downgrade() -> None:
    for column in ("thread_id", "seller_id", "buyer_id"):
        op.drop_index(f"uq_calls_live_{column}", "calls")
    op.drop_index("ix_calls_owner_node", "calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("owner_epoch")
        batch.drop_column("owner_node")
    op.drop_table("nodes")
