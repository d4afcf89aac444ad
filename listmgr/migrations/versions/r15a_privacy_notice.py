"""privacy notices: each version of a list's notice, and the one a consent was given under

Revision ID: r15a
Revises: q14a
Create Date: 2026-12-07 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r15a"
down_revision = "q14a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["mailing_list.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("list_id", "version"),
    )
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("privacy_notice_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_consent_event_privacy_notice_id",
            "privacy_notice",
            ["privacy_notice_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.drop_constraint("fk_consent_event_privacy_notice_id", type_="foreignkey")
        batch_op.drop_column("privacy_notice_id")
    op.drop_table("privacy_notice")
