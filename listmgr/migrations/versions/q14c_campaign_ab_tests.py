"""campaign A/B tests: the test's settings and winner; the variant on each delivery

Revision ID: q14c
Revises: q14b
Create Date: 2026-12-06 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q14c"
down_revision = "q14b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ab_test", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("ab_decide_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("ab_decided_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("ab_winner", sa.Integer(), nullable=True))
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variant", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("variant")
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_column("ab_winner")
        batch_op.drop_column("ab_decided_at")
        batch_op.drop_column("ab_decide_at")
        batch_op.drop_column("ab_test")
