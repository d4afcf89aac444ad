"""campaign: the time zone a schedule was chosen in; ids never used twice on SQLite

Revision ID: q14b
Revises: q14f
Create Date: 2026-12-06 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q14b"
down_revision = "q14f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Drafts can be deleted. SQLite gives a new row the highest id plus one, so the next
    # campaign took a deleted draft's id, and with it the draft's audit history and the
    # campaign id in its test messages' links. AUTOINCREMENT never hands an id out twice
    # (PostgreSQL's sequences never did); SQLite can only add it by rebuilding the table.
    with op.batch_alter_table(
        "campaign",
        schema=None,
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True} if sqlite else {},
    ) as batch_op:
        batch_op.add_column(
            sa.Column("schedule_timezone", sa.String(length=64), nullable=False, server_default="")
        )
    if sqlite:
        top = (
            "max(coalesce((SELECT max(id) FROM campaign), 0), coalesce((SELECT "
            "max(CAST(target_id AS INTEGER)) FROM audit_log WHERE action = "
            "'campaign.delete'), 0))"
        )
        op.execute(f"UPDATE sqlite_sequence SET seq = max(seq, {top}) WHERE name = 'campaign'")
        op.execute(
            f"INSERT INTO sqlite_sequence (name, seq) SELECT 'campaign', {top} "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'campaign')"
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "campaign",
        schema=None,
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": False} if sqlite else {},
    ) as batch_op:
        batch_op.drop_column("schedule_timezone")
