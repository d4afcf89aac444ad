"""delivery ledger: no row-by-row foreign key checks, one index fewer

The ledger is written a million rows at a time when a campaign starts. Checking two foreign
keys per row (and locking every subscriber row) cost more than the insert itself, so
delivery.campaign_id and delivery.subscriber_id are plain columns: erasure clears
subscriber_id itself and only drafts (which have no ledger) can be deleted. The unique key
leads with subscriber_id, so it also serves lookups by subscriber (the separate index goes),
and the "received" segment index only holds sent rows (queued rows never need it).

Revision ID: d7f3
Revises: w1b3
Create Date: 2026-11-25 15:00:00
"""

from __future__ import annotations

from alembic import op

revision = "d7f3"
down_revision = "w1b3"
branch_labels = None
depends_on = None

COLUMNS = (
    "id, campaign_id, subscriber_id, list_id, status, attempts, next_attempt_at, "
    "lease_until, claimed_by, in_flight, possibly_duplicate, sent_at, smtp_server, error, "
    "bounced, complained, unsubscribed, attempted_at"
)


def _sqlite_rebuild(constraints: str, sent_index: str) -> None:
    op.execute(f"""CREATE TABLE _delivery_new (
    id INTEGER NOT NULL, campaign_id INTEGER NOT NULL, subscriber_id INTEGER,
    list_id INTEGER, status VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL,
    next_attempt_at DATETIME, lease_until DATETIME, claimed_by VARCHAR(100) NOT NULL,
    in_flight BOOLEAN NOT NULL, possibly_duplicate BOOLEAN NOT NULL, sent_at DATETIME,
    smtp_server VARCHAR(200) NOT NULL, error VARCHAR(1000) NOT NULL, bounced BOOLEAN NOT NULL,
    complained BOOLEAN NOT NULL, unsubscribed BOOLEAN NOT NULL, attempted_at DATETIME,
    PRIMARY KEY (id), {constraints})""")
    op.execute(f"INSERT INTO _delivery_new ({COLUMNS}) SELECT {COLUMNS} FROM delivery")
    op.execute("DROP TABLE delivery")
    op.execute("ALTER TABLE _delivery_new RENAME TO delivery")
    op.execute("CREATE INDEX ix_delivery_claim ON delivery (campaign_id, status, next_attempt_at)")
    op.execute(sent_index)


def upgrade() -> None:
    sent = (
        "CREATE INDEX ix_delivery_sent_sub ON delivery (sent_at, subscriber_id) "
        "WHERE status = 'sent'"
    )
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(
            "CONSTRAINT uq_delivery_subscriber_campaign UNIQUE (subscriber_id, campaign_id)", sent
        )
        return
    op.execute("ALTER TABLE delivery DROP CONSTRAINT delivery_campaign_id_fkey")
    op.execute("ALTER TABLE delivery DROP CONSTRAINT delivery_subscriber_id_fkey")
    op.execute("ALTER TABLE delivery DROP CONSTRAINT delivery_campaign_id_subscriber_id_key")
    op.execute("DROP INDEX ix_delivery_subscriber_id")
    op.execute("DROP INDEX ix_delivery_sent_sub")
    op.execute(
        "ALTER TABLE delivery ADD CONSTRAINT uq_delivery_subscriber_campaign "
        "UNIQUE (subscriber_id, campaign_id)"
    )
    op.execute(sent)


def downgrade() -> None:
    sent = "CREATE INDEX ix_delivery_sent_sub ON delivery (status, sent_at, subscriber_id)"
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(
            "UNIQUE (campaign_id, subscriber_id), FOREIGN KEY(campaign_id) "
            "REFERENCES campaign (id) ON DELETE CASCADE, FOREIGN KEY(subscriber_id) "
            "REFERENCES subscriber (id) ON DELETE SET NULL",
            sent,
        )
        op.execute("CREATE INDEX ix_delivery_subscriber_id ON delivery (subscriber_id)")
        return
    op.execute("DROP INDEX ix_delivery_sent_sub")
    op.execute("ALTER TABLE delivery DROP CONSTRAINT uq_delivery_subscriber_campaign")
    op.execute(
        "ALTER TABLE delivery ADD CONSTRAINT delivery_campaign_id_subscriber_id_key "
        "UNIQUE (campaign_id, subscriber_id)"
    )
    op.execute("CREATE INDEX ix_delivery_subscriber_id ON delivery (subscriber_id)")
    op.execute(
        "ALTER TABLE delivery ADD CONSTRAINT delivery_subscriber_id_fkey FOREIGN KEY "
        "(subscriber_id) REFERENCES subscriber (id) ON DELETE SET NULL"
    )
    op.execute(
        "ALTER TABLE delivery ADD CONSTRAINT delivery_campaign_id_fkey FOREIGN KEY "
        "(campaign_id) REFERENCES campaign (id) ON DELETE CASCADE"
    )
    op.execute(sent)
