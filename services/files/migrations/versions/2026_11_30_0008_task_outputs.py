"""files produced by a task: produced_by_task_id and output_path, unique together

Revision ID: 0008_task_outputs
Revises: 0007_input_leases
Create Date: 2026-11-30 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_task_outputs"
down_revision = "0007_input_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "files", sa.Column("produced_by_task_id", sa.Uuid(), nullable=True), schema="files"
    )
    op.add_column(
        "files", sa.Column("output_path", sa.String(length=1024), nullable=True), schema="files"
    )
    op.create_unique_constraint(
        op.f("uq_files_task_output"),
        "files",
        ["produced_by_task_id", "output_path"],
        schema="files",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_constraint(op.f("uq_files_task_output"), "files", schema="files", type_="unique")
    op.drop_column("files", "output_path", schema="files")
    op.drop_column("files", "produced_by_task_id", schema="files")
