"""campaign: why it stopped by itself (status_reason)

Revision ID: p12e
Revises: p12c
Create Date: 2026-12-06 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p12e"
down_revision = "p12c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status_reason", sa.String(length=1000), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_column("status_reason")
