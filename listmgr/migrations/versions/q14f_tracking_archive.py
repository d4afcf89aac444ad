"""tracking: campaign links, machine-flagged engagement; list archives

Revision ID: q14f
Revises: p12b
Create Date: 2026-12-06 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q14f"
down_revision = "p12b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_link",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey("campaign.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.UniqueConstraint("campaign_id", "url", name="uq_campaign_link_url"),
    )
    with op.batch_alter_table("engagement", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("machine", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("mailing_list", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("archive", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("mailing_list", schema=None) as batch_op:
        batch_op.drop_column("archive")
    with op.batch_alter_table("engagement", schema=None) as batch_op:
        batch_op.drop_column("machine")
        batch_op.drop_column("link_id")
    op.drop_table("campaign_link")
