"""task dependencies: edges between one owner's tasks, trigger rules, exit codes to retry on

Revision ID: 0011_dependencies
Revises: 0010_executor
Create Date: 2026-11-30 17:50:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011_dependencies"
down_revision = "0010_executor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "tasks",
        sa.Column(
            "trigger_rule", sa.String(length=16), server_default="ALL_SUCCEEDED", nullable=False
        ),
        schema="tasks",
    )
    op.add_column(
        "tasks",
        sa.Column("awaiting_dependencies", sa.Boolean(), server_default="false", nullable=False),
        schema="tasks",
    )
    op.add_column(
        "tasks",
        sa.Column("retry_on_exit_codes", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="tasks",
    )
    op.create_check_constraint(
        "trigger_rule",
        "tasks",
        "trigger_rule IN ('ALL_SUCCEEDED', 'ALL_DONE')",
        schema="tasks",
    )
    op.create_table(
        "task_dependencies",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("depends_on_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.tasks.id"],
            name=op.f("fk_task_dependencies_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["tasks.tasks.id"],
            name=op.f("fk_task_dependencies_depends_on_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "depends_on_id", name=op.f("pk_task_dependencies")),
        schema="tasks",
    )
    op.create_index(
        "ix_task_dependencies_depends_on_id",
        "task_dependencies",
        ["depends_on_id"],
        unique=False,
        schema="tasks",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(
        "ix_task_dependencies_depends_on_id", table_name="task_dependencies", schema="tasks"
    )
    op.drop_table("task_dependencies", schema="tasks")
    op.drop_constraint("ck_tasks_trigger_rule", "tasks", schema="tasks")
    op.drop_column("tasks", "retry_on_exit_codes", schema="tasks")
    op.drop_column("tasks", "awaiting_dependencies", schema="tasks")
    op.drop_column("tasks", "trigger_rule", schema="tasks")
