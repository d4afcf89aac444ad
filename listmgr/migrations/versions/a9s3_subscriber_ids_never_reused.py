"""subscriber: ids are never used twice on SQLite

Revision ID: a9s3
Revises: i5e2
Create Date: 2026-12-05 04:40:00
"""

from __future__ import annotations

from alembic import op

revision = "a9s3"
down_revision = "i5e2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Signed links name the subscriber by id. SQLite gives a new row the highest id plus one, so
    # after the newest subscriber was erased the next one got the same id, and the erased
    # person's old links opened the newcomer's data. AUTOINCREMENT never hands an id out twice
    # (PostgreSQL's sequences never did). SQLite can only add it by rebuilding the table.
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "subscriber", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
        # Nor the ids of people erased before this revision (the audit log keeps those).
        top = (
            "max(coalesce((SELECT max(id) FROM subscriber), 0), coalesce((SELECT "
            "max(CAST(target_id AS INTEGER)) FROM audit_log WHERE action = "
            "'subscriber.erase'), 0))"
        )
        op.execute(f"UPDATE sqlite_sequence SET seq = max(seq, {top}) WHERE name = 'subscriber'")
        op.execute(
            f"INSERT INTO sqlite_sequence (name, seq) SELECT 'subscriber', {top} "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'subscriber')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "subscriber", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass
