"""delivery guard per receiving domain: back-off, concurrency slots, warm-up volume

Revision ID: s16b
Revises: r15b
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s16b"
down_revision = "s16a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_backoff",
        sa.Column("domain", sa.String(length=255), primary_key=True),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
    )
    op.create_table(
        "domain_slot",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_domain_slot_domain", "domain_slot", ["domain"])
    op.create_index("ix_domain_slot_holder", "domain_slot", ["holder"])
    op.create_table(
        "send_volume",
        sa.Column("day", sa.String(length=10), primary_key=True),
        sa.Column("used", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("send_volume")
    op.drop_index("ix_domain_slot_holder", table_name="domain_slot")
    op.drop_index("ix_domain_slot_domain", table_name="domain_slot")
    op.drop_table("domain_slot")
    op.drop_table("domain_backoff")
