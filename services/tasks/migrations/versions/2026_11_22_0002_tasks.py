"""tasks and their log chunks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:58:58.066902
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATUSES = (
    "'PENDING', 'QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED', 'SKIPPED'"
)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("command", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("env", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("cpu_limit", sa.Float(), nullable=False),
        sa.Column("memory_limit_mb", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("network", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("container_name", sa.String(length=128), nullable=True),
        sa.Column("container_id", sa.String(length=64), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("usage_sampled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stdout_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("stderr_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("stdout_dropped_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("stderr_dropped_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_tasks_status")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_tasks_attempts_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        schema="tasks",
    )
    op.create_index(
        "ix_tasks_owner_created", "tasks", ["owner_id", "created_at", "id"], schema="tasks"
    )
    op.create_index(
        "ix_tasks_owner_status_created",
        "tasks",
        ["owner_id", "status", "created_at", "id"],
        schema="tasks",
    )
    op.create_index(
        "ix_tasks_unfinished_status",
        "tasks",
        ["status"],
        schema="tasks",
        postgresql_where="status IN ('PENDING', 'QUEUED', 'RUNNING')",
    )
    op.create_table(
        "task_log_chunks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=6), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "stream IN ('stdout', 'stderr')", name=op.f("ck_task_log_chunks_stream")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.tasks.id"],
            name=op.f("fk_task_log_chunks_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_log_chunks")),
        schema="tasks",
    )
    op.create_index(
        "ix_task_log_chunks_task_stream_id",
        "task_log_chunks",
        ["task_id", "stream", "id"],
        schema="tasks",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_task_log_chunks_task_stream_id", table_name="task_log_chunks", schema="tasks")
    op.drop_table("task_log_chunks", schema="tasks")
    op.drop_index("ix_tasks_unfinished_status", table_name="tasks", schema="tasks")
    op.drop_index("ix_tasks_owner_status_created", table_name="tasks", schema="tasks")
    op.drop_index("ix_tasks_owner_created", table_name="tasks", schema="tasks")
    op.drop_table("tasks", schema="tasks")
