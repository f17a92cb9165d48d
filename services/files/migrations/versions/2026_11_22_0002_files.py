"""files and storage accounts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:00:51.879663
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("original_filename", sa.String(length=1024), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="UPLOADED", nullable=False),
        sa.Column("mime_type", sa.String(length=255), nullable=True),
        sa.Column("encoding", sa.String(length=64), nullable=True),
        sa.Column("line_count", sa.BigInteger(), nullable=True),
        sa.Column("word_count", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "extra", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('UPLOADED', 'PROCESSING', 'PROCESSED', 'FAILED')",
            name=op.f("ck_files_status"),
        ),
        sa.CheckConstraint("size >= 0", name=op.f("ck_files_size_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_files_storage_key")),
        schema="files",
    )
    op.create_index(
        "ix_files_owner_id_created_at_id",
        "files",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema="files",
    )
    op.create_table(
        "storage_accounts",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "used_bytes >= 0", name=op.f("ck_storage_accounts_used_bytes_not_negative")
        ),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_storage_accounts")),
        schema="files",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("storage_accounts", schema="files")
    op.drop_index("ix_files_owner_id_created_at_id", table_name="files", schema="files")
    op.drop_table("files", schema="files")
