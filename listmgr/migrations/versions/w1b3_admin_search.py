"""admin search: prefix indexes for the subscribers page on PostgreSQL

Revision ID: w1b3
Revises: s1a2
Create Date: 2026-11-25 14:30:00
"""

from __future__ import annotations

from alembic import op

revision = "w1b3"
down_revision = "s1a2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # PostgreSQL answers LIKE 'prefix%' from a btree only under the C collation or with the
    # pattern operator class; the admin's search by the start of an address or a name uses
    # these (SQLite's LIKE cannot use an index on this column either way: no change there).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_subscriber_email_prefix ON subscriber (email text_pattern_ops)")
        op.execute(
            "CREATE INDEX ix_subscriber_name_prefix ON subscriber (lower(name) text_pattern_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_subscriber_name_prefix")
        op.execute("DROP INDEX ix_subscriber_email_prefix")
