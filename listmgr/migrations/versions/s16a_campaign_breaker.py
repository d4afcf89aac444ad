"""campaign circuit breaker: where its window begins, and an index over the messages handed
over per campaign (partial: materializing an audience never writes to it)

Revision ID: s16a
Revises: r15b
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s16a"
down_revision = "s16c"
branch_labels = None
depends_on = None

HANDED_OVER = "status IN ('sent', 'failed')"


def upgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("breaker_since", sa.DateTime(), nullable=True))
    op.create_index(
        "ix_delivery_handed",
        "delivery",
        ["campaign_id", "attempted_at"],
        postgresql_where=sa.text(HANDED_OVER),
        sqlite_where=sa.text(HANDED_OVER),
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_handed", table_name="delivery")
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_column("breaker_since")
