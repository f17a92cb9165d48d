"""log chunks know where they start in their stream

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 23:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    # Chunks stored before this revision count as starting at 0: readers may then miss a gap
    # notice for output dropped back then, nothing worse.
    op.add_column(
        "task_log_chunks",
        sa.Column("start_offset", sa.BigInteger(), server_default="0", nullable=False),
        schema="tasks",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("task_log_chunks", "start_offset", schema="tasks")
