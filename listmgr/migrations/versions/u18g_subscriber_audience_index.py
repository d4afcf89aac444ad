"""subscriber: ix_subscriber_audience (id, email_hash, paused_until) for audience counts

Revision ID: u18g
Revises: t17a
Create Date: 2026-12-07 05:20:00
"""

from __future__ import annotations

from alembic import op

revision = "u18g"
down_revision = "t17a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every audience checks each candidate for suppression (email_hash) and a pause: a narrow
    # index in id order answers both without reading the wide rows (index-only scans merged
    # with the membership index). Keyed by id, so inserts append to it.
    op.create_index(
        "ix_subscriber_audience", "subscriber", ["id", "email_hash", "paused_until"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_subscriber_audience", table_name="subscriber")
