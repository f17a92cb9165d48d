"""processing claims, leases and attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 06:29:32.963975
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "files",
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        schema="files",
    )
    op.add_column("files", sa.Column("processing_token", sa.Uuid(), nullable=True), schema="files")
    op.add_column(
        "files",
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        schema="files",
    )
    op.create_index(
        "ix_files_unfinished",
        "files",
        ["lease_expires_at"],
        unique=False,
        schema="files",
        postgresql_where=sa.text("status IN ('UPLOADED', 'PROCESSING')"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(
        "ix_files_unfinished",
        table_name="files",
        schema="files",
        postgresql_where=sa.text("status IN ('UPLOADED', 'PROCESSING')"),
    )
    op.drop_column("files", "lease_expires_at", schema="files")
    op.drop_column("files", "processing_token", schema="files")
    op.drop_column("files", "attempts", schema="files")
