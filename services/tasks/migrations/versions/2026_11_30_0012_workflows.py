"""workflows: a DAG of one owner's tasks created in one request; a schedule may start one

Revision ID: 0012_workflows
Revises: 0011_dependencies
Create Date: 2026-11-30 18:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_workflows"
down_revision = "0011_dependencies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "workflows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
        schema="tasks",
    )
    op.create_index(
        "ix_workflows_owner_created",
        "workflows",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema="tasks",
    )
    op.add_column("tasks", sa.Column("workflow_id", sa.Uuid(), nullable=True), schema="tasks")
    op.add_column(
        "tasks", sa.Column("workflow_step", sa.String(length=100), nullable=True), schema="tasks"
    )
    op.add_column(
        "tasks", sa.Column("workflow_position", sa.Integer(), nullable=True), schema="tasks"
    )
    op.create_foreign_key(
        op.f("fk_tasks_workflow_id_workflows"),
        "tasks",
        "workflows",
        ["workflow_id"],
        ["id"],
        source_schema="tasks",
        referent_schema="tasks",
        ondelete="CASCADE",
    )
    op.create_index("ix_tasks_workflow_id", "tasks", ["workflow_id"], unique=False, schema="tasks")
    op.add_column(
        "schedules",
        sa.Column("workflow_spec", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="tasks",
    )
    op.alter_column("schedules", "task_spec", nullable=True, schema="tasks")


def downgrade() -> None:
    """Revert this revision."""
    op.execute("DELETE FROM tasks.schedules WHERE task_spec IS NULL")
    op.alter_column("schedules", "task_spec", nullable=False, schema="tasks")
    op.drop_column("schedules", "workflow_spec", schema="tasks")
    op.drop_index("ix_tasks_workflow_id", table_name="tasks", schema="tasks")
    op.drop_constraint(
        "fk_tasks_workflow_id_workflows", "tasks", schema="tasks", type_="foreignkey"
    )
    op.drop_column("tasks", "workflow_position", schema="tasks")
    op.drop_column("tasks", "workflow_step", schema="tasks")
    op.drop_column("tasks", "workflow_id", schema="tasks")
    op.drop_index("ix_workflows_owner_created", table_name="workflows", schema="tasks")
    op.drop_table("workflows", schema="tasks")
