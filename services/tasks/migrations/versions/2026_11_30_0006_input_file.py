"""a task's input file: the file leased to it, and its name and size once leased

Revision ID: 0006_input_file
Revises: 0005_sagas
Create Date: 2026-11-30 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_input_file"
down_revision = "0005_sagas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("tasks", sa.Column("input_file_id", sa.Uuid(), nullable=True), schema="tasks")
    op.add_column(
        "tasks", sa.Column("input_filename", sa.String(length=255), nullable=True), schema="tasks"
    )
    op.add_column("tasks", sa.Column("input_size", sa.BigInteger(), nullable=True), schema="tasks")


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("tasks", "input_size", schema="tasks")
    op.drop_column("tasks", "input_filename", schema="tasks")
    op.drop_column("tasks", "input_file_id", schema="tasks")
