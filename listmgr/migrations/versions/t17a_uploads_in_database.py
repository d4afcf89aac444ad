"""uploads in the database (every host reads them): upload, upload_chunk, import_job.upload_id

Revision ID: t17a
Revises: r15b
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "t17a"
down_revision = "t17b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("token"),
    )
    op.create_table(
        "upload_chunk",
        sa.Column(
            "upload_id",
            sa.Integer(),
            sa.ForeignKey("upload.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upload_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_import_job_upload_id", "upload", ["upload_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_import_job_upload_id", ["upload_id"])


def downgrade() -> None:
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_index("ix_import_job_upload_id")
        batch_op.drop_constraint("fk_import_job_upload_id", type_="foreignkey")
        batch_op.drop_column("upload_id")
    op.drop_table("upload_chunk")
    op.drop_table("upload")
