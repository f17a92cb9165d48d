"""files.processed_at index (partial, processed files only): the processing rate on /metrics

Revision ID: 0009_processed_at_index
Revises: 0008_task_outputs
Create Date: 2026-11-30 23:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_processed_at_index"
down_revision = "0008_task_outputs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    # CONCURRENTLY: a plain CREATE INDEX would block uploads and processing for as long as a big
    # files table takes to index. It cannot run in a transaction, hence the autocommit block.
    with op.get_context().autocommit_block():
        # A concurrent build that failed leaves an invalid index behind, which would make every
        # retry of this revision fail; before this revision the index cannot exist otherwise.
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS files.ix_files_processed_at")
        op.create_index(
            "ix_files_processed_at",
            "files",
            ["processed_at"],
            unique=False,
            schema="files",
            postgresql_where=sa.text("processed_at IS NOT NULL"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_files_processed_at",
            table_name="files",
            schema="files",
            postgresql_concurrently=True,
        )
