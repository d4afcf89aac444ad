"""worker processes: a heartbeat row per running worker, for `listmgr status`

Revision ID: t17b
Revises: r15b
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "t17b"
down_revision = "s16b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_process",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_worker_process_seen_at", "worker_process", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_worker_process_seen_at", table_name="worker_process")
    op.drop_table("worker_process")
