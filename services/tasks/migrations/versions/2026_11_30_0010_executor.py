"""which executor runs a task (docker or swarm)

Revision ID: 0010_executor
Revises: 0009_notifications
Create Date: 2026-11-30 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_executor"
down_revision = "0009_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "tasks",
        sa.Column("executor", sa.String(32), nullable=False, server_default="docker"),
        schema="tasks",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("tasks", "executor", schema="tasks")
