"""inbound proof: what tied an inbound message to us, and outbox Message-IDs to match against

Revision ID: p12b
Revises: p12g
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p12b"
down_revision = "p12g"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Messages processed before this revision keep "": what they did stays in their action.
    with op.batch_alter_table("inbound_message") as batch_op:
        batch_op.add_column(
            sa.Column("proof", sa.String(length=16), nullable=False, server_default="")
        )
    op.create_index("ix_outbox_message_id", "outbox", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_message_id", table_name="outbox")
    with op.batch_alter_table("inbound_message") as batch_op:
        batch_op.drop_column("proof")
