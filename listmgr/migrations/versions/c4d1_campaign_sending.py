"""campaign sending: delivery attempted_at, campaign layout

Revision ID: c4d1
Revises: 0001
Create Date: 2026-11-25 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c4d1"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempted_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("layout", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_column("layout")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("attempted_at")
