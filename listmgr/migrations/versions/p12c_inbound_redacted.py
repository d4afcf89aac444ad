"""inbound_message.redacted_at: mail of others that named an erased person, redacted

Revision ID: p12c
Revises: p12a
Create Date: 2026-12-06 02:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p12c"
down_revision = "p12a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redacted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_column("redacted_at")
