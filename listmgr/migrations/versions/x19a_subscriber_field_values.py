"""subscriber_field_value: each custom field value of each subscriber, typed and indexed for
segment conditions, kept in step with subscriber.fields by triggers

Revision ID: x19a
Revises: u18g
Create Date: 2026-12-07 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "x19a"
down_revision = "u18g"
branch_labels = None
depends_on = None

# The database keeps the table in step with subscriber.fields itself (triggers), so every way
# a profile is written — each service, bulk import (COPY, INSERT ... SELECT), raw SQL, and a
# previous release that does not know the table during a rolling upgrade — is covered by one
# rule: the rows below, in the same transaction as the write.
#
# A row per value: position 0 holds a string, number or boolean (kind names the JSON type:
# a value of another type is no row, as a wrong type reads as missing); an array holds one row
# per element (kind "item", position 1..n; a non-string element has no text). A string of more
# than LONG bytes goes to value_long instead of value_text (PostgreSQL's btree entries are at
# most ~2.7 kB: an indexed long value would refuse the write). Keys longer than KEY_MAX (no
# field definition has one, so no rule can name it) are left out for the same reason.
LONG = 2000
KEY_MAX = 64
MAX_DOUBLE = "1.7976931348623157e308"

PG_ROWS = f"""
CREATE FUNCTION subscriber_field_rows(sid integer, doc jsonb)
RETURNS TABLE (subscriber_id integer, key text, "position" integer, kind varchar(8),
               value_text text, value_long text, value_number double precision,
               value_bool boolean)
LANGUAGE sql IMMUTABLE AS $$
  SELECT sid, f.key, 0, jsonb_typeof(f.value)::varchar(8),
         CASE WHEN jsonb_typeof(f.value) = 'string' AND octet_length(f.value #>> '{{}}') <= {LONG}
              THEN f.value #>> '{{}}' END,
         CASE WHEN jsonb_typeof(f.value) = 'string' AND octet_length(f.value #>> '{{}}') > {LONG}
              THEN f.value #>> '{{}}' END,
         -- a number too large for a double is no number a rule can compare with
         CASE WHEN jsonb_typeof(f.value) = 'number'
                   AND abs((f.value #>> '{{}}')::numeric) <= {MAX_DOUBLE}
              THEN (f.value #>> '{{}}')::double precision END,
         CASE WHEN jsonb_typeof(f.value) = 'boolean' THEN (f.value #>> '{{}}')::boolean END
  FROM jsonb_each(CASE WHEN jsonb_typeof(doc) = 'object' THEN doc ELSE '{{}}' END) AS f
  WHERE jsonb_typeof(f.value) IN ('string', 'number', 'boolean')
    AND octet_length(f.key) <= {KEY_MAX}
  UNION ALL
  SELECT sid, f.key, e.n::integer, 'item',
         CASE WHEN jsonb_typeof(e.value) = 'string' AND octet_length(e.value #>> '{{}}') <= {LONG}
              THEN e.value #>> '{{}}' END,
         CASE WHEN jsonb_typeof(e.value) = 'string' AND octet_length(e.value #>> '{{}}') > {LONG}
              THEN e.value #>> '{{}}' END,
         NULL, NULL
  FROM jsonb_each(CASE WHEN jsonb_typeof(doc) = 'object' THEN doc ELSE '{{}}' END) AS f
  CROSS JOIN LATERAL jsonb_array_elements(
      CASE WHEN jsonb_typeof(f.value) = 'array' THEN f.value ELSE '[]' END
  ) WITH ORDINALITY AS e(value, n)
  WHERE octet_length(f.key) <= {KEY_MAX}
$$
"""

# Statement-level triggers with transition tables: a COPY or an INSERT ... SELECT of a million
# subscribers writes their values in one set-based statement, not a million calls.
PG_TRIGGERS = [
    """
CREATE FUNCTION subscriber_field_values_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO subscriber_field_value
  SELECT r.* FROM new_rows AS n, subscriber_field_rows(n.id, n.fields) AS r;
  RETURN NULL;
END $$
""",
    """
CREATE FUNCTION subscriber_field_values_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM subscriber_field_value AS v USING new_rows AS n, old_rows AS o
  WHERE v.subscriber_id = n.id AND o.id = n.id AND n.fields IS DISTINCT FROM o.fields;
  INSERT INTO subscriber_field_value
  SELECT r.* FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id,
       subscriber_field_rows(n.id, n.fields) AS r
  WHERE n.fields IS DISTINCT FROM o.fields;
  RETURN NULL;
END $$
""",
    "CREATE TRIGGER subscriber_field_values_insert AFTER INSERT ON subscriber "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION subscriber_field_values_inserted()",
    "CREATE TRIGGER subscriber_field_values_update AFTER UPDATE ON subscriber "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION subscriber_field_values_updated()",
]
PG_BACKFILL = (
    "INSERT INTO subscriber_field_value "
    "SELECT r.* FROM subscriber AS s, subscriber_field_rows(s.id, s.fields) AS r"
)


def _sqlite_rows(sid: str, doc: str, source: str = "") -> str:
    """The rows of one subscriber's fields, or of each subscriber in `source` (SQLite has no
    functions of its own: the triggers and the backfill each say it, from this one text)."""
    obj = f"CASE WHEN json_valid({doc}) AND json_type({doc}) = 'object' THEN {doc} ELSE '{{}}' END"

    def text(column: str, type_: str, long: bool) -> str:
        size = f"length(CAST({column} AS BLOB)) {'>' if long else '<='} {LONG}"
        return f"CASE WHEN {type_} = 'text' AND {size} THEN {column} END"

    return f"""
  SELECT {sid}, f.key, 0,
         CASE f.type WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number'
                     WHEN 'real' THEN 'number' ELSE 'boolean' END,
         {text("f.atom", "f.type", False)}, {text("f.atom", "f.type", True)},
         CASE WHEN f.type IN ('integer', 'real') AND abs(f.atom) <= {MAX_DOUBLE}
              THEN CAST(f.atom AS REAL) END,
         CASE f.type WHEN 'true' THEN 1 WHEN 'false' THEN 0 END
  FROM {source}json_each({obj}) AS f
  WHERE f.type IN ('text', 'integer', 'real', 'true', 'false')
    AND length(CAST(f.key AS BLOB)) <= {KEY_MAX}
  UNION ALL
  SELECT {sid}, f.key, e.key + 1, 'item',
         {text("e.atom", "e.type", False)}, {text("e.atom", "e.type", True)}, NULL, NULL
  FROM {source}json_each({obj}) AS f,
       json_each(CASE WHEN f.type = 'array' THEN f.value ELSE '[]' END) AS e
  WHERE length(CAST(f.key AS BLOB)) <= {KEY_MAX}"""


COLUMNS = "subscriber_id, key, position, kind, value_text, value_long, value_number, value_bool"
SQLITE_TRIGGERS = [
    "CREATE TRIGGER subscriber_field_values_insert AFTER INSERT ON subscriber BEGIN "
    f"INSERT INTO subscriber_field_value ({COLUMNS}) {_sqlite_rows('NEW.id', 'NEW.fields')}; "
    "END",
    "CREATE TRIGGER subscriber_field_values_update AFTER UPDATE OF fields ON subscriber "
    "WHEN OLD.fields IS NOT NEW.fields BEGIN "
    "DELETE FROM subscriber_field_value WHERE subscriber_id = OLD.id; "
    f"INSERT INTO subscriber_field_value ({COLUMNS}) {_sqlite_rows('NEW.id', 'NEW.fields')}; "
    "END",
    # Also when foreign keys are not enforced (they are per connection on SQLite).
    "CREATE TRIGGER subscriber_field_values_delete AFTER DELETE ON subscriber BEGIN "
    "DELETE FROM subscriber_field_value WHERE subscriber_id = OLD.id; END",
]
SQLITE_BACKFILL = (
    f"INSERT INTO subscriber_field_value ({COLUMNS}) "
    f"{_sqlite_rows('s.id', 's.fields', 'subscriber AS s, ')}"
)


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "subscriber_field_value",
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscriber.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_long", sa.Text(), nullable=True),
        sa.Column("value_number", sa.Float(), nullable=True),
        sa.Column("value_bool", sa.Boolean(), nullable=True),
    )
    # Triggers before the backfill: on PostgreSQL creating them locks out writes to subscriber
    # until this migration commits, so no write falls between the backfill and the triggers.
    if pg:
        op.execute(PG_ROWS)
        for statement in PG_TRIGGERS:
            op.execute(statement)
        op.execute(PG_BACKFILL)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
        op.execute(SQLITE_BACKFILL)
    # Indexes after the backfill (built once rather than grown row by row). Each condition
    # reads one of them alone: the key, the value, and the subscriber it belongs to.
    op.create_index(
        "ix_field_value_text",
        "subscriber_field_value",
        ["key", "kind", "value_text", "subscriber_id", "position"],
    )
    op.create_index(
        "ix_field_value_number",
        "subscriber_field_value",
        ["key", "value_number", "subscriber_id", "position"],
        postgresql_where=sa.text("value_number IS NOT NULL"),
        sqlite_where=sa.text("value_number IS NOT NULL"),
    )
    op.create_index(
        "ix_field_value_bool",
        "subscriber_field_value",
        ["key", "value_bool", "subscriber_id", "position"],
        postgresql_where=sa.text("value_bool IS NOT NULL"),
        sqlite_where=sa.text("value_bool IS NOT NULL"),
    )
    if pg:
        # Keys and values go together (only "since" holds dates, only "plan" holds "pro"):
        # estimated column by column, a condition matching a third of everyone looks like a
        # few hundred rows, and PostgreSQL looks each of them up one by one where merging the
        # sorted sets is many times faster. The most common (key, value) pairs, counted
        # together, give the true share.
        op.execute(
            "CREATE STATISTICS subscriber_field_value_mcv (mcv) "
            "ON key, kind, value_text, value_number, value_bool FROM subscriber_field_value"
        )
        op.execute("ALTER STATISTICS subscriber_field_value_mcv SET STATISTICS 1000")
    op.execute("ANALYZE subscriber_field_value")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER subscriber_field_values_update ON subscriber")
        op.execute("DROP TRIGGER subscriber_field_values_insert ON subscriber")
        op.execute("DROP FUNCTION subscriber_field_values_updated()")
        op.execute("DROP FUNCTION subscriber_field_values_inserted()")
        op.execute("DROP FUNCTION subscriber_field_rows(integer, jsonb)")
    else:
        for name in ("delete", "update", "insert"):
            op.execute(f"DROP TRIGGER subscriber_field_values_{name}")
    op.drop_table("subscriber_field_value")
