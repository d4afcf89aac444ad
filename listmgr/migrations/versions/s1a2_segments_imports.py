"""segments and imports: JSONB profile columns on PostgreSQL, indexes for segment conditions,
import job heartbeat

Revision ID: s1a2
Revises: c4d1
Create Date: 2026-11-25 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s1a2"
down_revision = "c4d1"
branch_labels = None
depends_on = None

INDEXES = [
    ("activity_event", "ix_activity_type_at_sub", ["type", "at", "subscriber_id"]),
    ("engagement", "ix_engagement_kind_at_sub", ["kind", "at", "subscriber_id"]),
    ("delivery", "ix_delivery_sent_sub", ["status", "sent_at", "subscriber_id"]),
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # JSONB: segment conditions read keys without re-parsing the text of every row, and
        # PostgreSQL estimates equality conditions (fields @> {...}) from its statistics. (A GIN
        # index on fields would answer those too, but it made every import much slower.)
        op.execute("ALTER TABLE subscriber ALTER COLUMN fields TYPE jsonb USING fields::jsonb")
        op.execute(
            "ALTER TABLE activity_event ALTER COLUMN properties TYPE jsonb USING properties::jsonb"
        )
    for table, name, columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False)
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_row", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("error", sa.String(length=1000), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("last_row")
        batch_op.drop_column("heartbeat_at")
    for table, name, _ in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE activity_event ALTER COLUMN properties TYPE json USING properties::json"
        )
        op.execute("ALTER TABLE subscriber ALTER COLUMN fields TYPE json USING fields::json")
