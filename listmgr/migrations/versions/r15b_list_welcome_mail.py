"""mailing lists: an optional welcome mail after confirmation

Revision ID: r15b
Revises: r15a
Create Date: 2026-12-07 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r15b"
down_revision = "r15a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailing_list", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("welcome_mail", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("welcome_text", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("mailing_list", schema=None) as batch_op:
        batch_op.drop_column("welcome_text")
        batch_op.drop_column("welcome_mail")
