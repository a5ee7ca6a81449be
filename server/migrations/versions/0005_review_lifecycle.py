"""review lifecycle: review row versions, one violation per call and subject

Revision ID: 0005_review_lifecycle
Revises: 0009_cluster
Create Date: 2026-12-04 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_review_lifecycle"
down_revision: str | None = "0009_cluster"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    # Concurrent verdicts could record one call's violation several times; keep the first.
    op.execute(
        "DELETE FROM violations WHERE id NOT IN "
        "(SELECT MIN(id) FROM violations GROUP BY call_id, user_id)"
    )
    with op.batch_alter_table("violations") as batch:
        batch.create_unique_constraint("uq_violations_call_user", ["call_id", "user_id"])


def downgrade() -> None:
    with op.batch_alter_table("violations") as batch:
        batch.drop_constraint("uq_violations_call_user", type_="unique")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("version")
