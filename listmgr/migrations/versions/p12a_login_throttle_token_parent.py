"""login throttle per account and address; tokens remember the token that minted them

Revision ID: p12a
Revises: a9s3
Create Date: 2026-12-06 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "p12a"
down_revision = "a9s3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Failed sign-ins slow the next attempt down per account + address and per address, instead
    # of locking the account (which anyone who knows the address could do to the owner).
    op.create_table(
        "login_throttle",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_throttle_last_failed_at"), ["last_failed_at"], unique=False
        )
    # A token minted by another token belongs to it: listed and revoked with it.
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_token_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_api_token_created_by_token_id"), ["created_by_token_id"], unique=False
        )
    # The hard lock is gone: nobody stays locked out by an old counter.
    op.execute("UPDATE app_user SET locked_until = NULL, failed_logins = 0")


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_created_by_token_id"))
        batch_op.drop_column("created_by_token_id")
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_throttle_last_failed_at"))
    op.drop_table("login_throttle")
