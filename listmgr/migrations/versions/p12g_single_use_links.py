"""links: subscriber link epoch and single-use export/erase and confirmation nonces

Revision ID: p12g
Revises: p12e
Create Date: 2026-12-06 02:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p12g"
down_revision = "p12e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (no table rebuild: SQLite keeps AUTOINCREMENT).
    # Server defaults: imports insert rows with SQL of their own.
    op.add_column(
        "subscriber", sa.Column("link_epoch", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "subscriber",
        sa.Column("access_nonce", sa.String(length=32), nullable=False, server_default=""),
    )
    op.add_column("subscriber", sa.Column("access_sent_at", sa.DateTime(), nullable=True))
    # Confirmations pending before this revision have no nonce: their links ask for a new one.
    op.add_column(
        "membership",
        sa.Column("confirm_nonce", sa.String(length=32), nullable=False, server_default=""),
    )
    op.add_column("membership", sa.Column("confirm_requested_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("membership") as batch:
        batch.drop_column("confirm_requested_at")
        batch.drop_column("confirm_nonce")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "subscriber", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.drop_column("access_sent_at")
            batch.drop_column("access_nonce")
            batch.drop_column("link_epoch")
    else:
        op.drop_column("subscriber", "access_sent_at")
        op.drop_column("subscriber", "access_nonce")
        op.drop_column("subscriber", "link_epoch")
