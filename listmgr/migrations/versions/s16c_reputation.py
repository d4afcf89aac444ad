"""reputation: when an unsubscribe was asked for, and re-permission requests

Revision ID: s16c
Revises: r15b
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s16c"
down_revision = "r15b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_at", sa.DateTime(), nullable=True))
    op.create_table(
        "repermission",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "list_id",
            sa.Integer(),
            sa.ForeignKey("mailing_list.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("flag", sa.String(length=32), nullable=False),
        sa.Column("asked_at", sa.DateTime(), nullable=False),
        sa.Column("deadline", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=False, server_default=""),
    )
    op.create_index("ix_repermission_subscriber_id", "repermission", ["subscriber_id"])
    op.create_index("ix_repermission_open", "repermission", ["ended_at", "deadline"])


def downgrade() -> None:
    op.drop_index("ix_repermission_open", table_name="repermission")
    op.drop_index("ix_repermission_subscriber_id", table_name="repermission")
    op.drop_table("repermission")
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.drop_column("requested_at")
