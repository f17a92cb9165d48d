"""input leases: files leased to tasks as their input (tasks' task_input_file saga)

Revision ID: 0007_input_leases
Revises: 0006_search_documents
Create Date: 2026-11-30 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_input_leases"
down_revision = "0006_search_documents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "input_leases",
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.files.id"],
            name=op.f("fk_input_leases_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", "task_id", name=op.f("pk_input_leases")),
        schema="files",
    )
    for column in ("task_id", "owner_id", "expires_at"):
        op.create_index(op.f(f"ix_input_leases_{column}"), "input_leases", [column], schema="files")


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("input_leases", schema="files")
