"""tasks.started_at index (partial, started tasks only): the start rate on /metrics reads it

Revision ID: 0013_started_at_index
Revises: 0012_workflows
Create Date: 2026-11-30 23:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_started_at_index"
down_revision = "0012_workflows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    # CONCURRENTLY: a plain CREATE INDEX would block every task transition for as long as a big
    # tasks table takes to index. It cannot run in a transaction, hence the autocommit block.
    with op.get_context().autocommit_block():
        # A concurrent build that failed leaves an invalid index behind, which would make every
        # retry of this revision fail; before this revision the index cannot exist otherwise.
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS tasks.ix_tasks_started_at")
        op.create_index(
            "ix_tasks_started_at",
            "tasks",
            ["started_at"],
            unique=False,
            schema="tasks",
            postgresql_where=sa.text("started_at IS NOT NULL"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_tasks_started_at",
            table_name="tasks",
            schema="tasks",
            postgresql_concurrently=True,
        )
