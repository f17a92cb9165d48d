"""a task's note on its outputs (what was dropped, why they were not stored)

Revision ID: 0008_task_outputs
Revises: 0007_schedules
Create Date: 2026-11-30 17:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_task_outputs"
down_revision = "0007_schedules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("tasks", sa.Column("outputs_note", sa.Text(), nullable=True), schema="tasks")


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("tasks", "outputs_note", schema="tasks")
