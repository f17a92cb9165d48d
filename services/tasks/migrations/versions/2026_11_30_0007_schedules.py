"""recurring schedules: schedules, schedule_fires and tasks.schedule_id

Revision ID: 0007_schedules
Revises: 0006_input_file
Create Date: 2026-11-30 17:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_schedules"
down_revision = "0006_input_file"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("task_spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("misfire_policy", sa.String(length=16), nullable=False),
        sa.Column("overlap_policy", sa.String(length=16), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(cron IS NULL) <> (interval_seconds IS NULL)",
            name=op.f("ck_schedules_cron_or_interval"),
        ),
        sa.CheckConstraint(
            "misfire_policy IN ('SKIP', 'RUN_ONCE', 'RUN_ALL')",
            name=op.f("ck_schedules_misfire_policy"),
        ),
        sa.CheckConstraint(
            "overlap_policy IN ('ALLOW', 'SKIP', 'CANCEL_PREVIOUS')",
            name=op.f("ck_schedules_overlap_policy"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        schema="tasks",
    )
    op.create_index(
        "ix_schedules_owner_created",
        "schedules",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema="tasks",
    )
    op.create_index(
        "ix_schedules_due",
        "schedules",
        ["next_fire_at"],
        unique=False,
        schema="tasks",
        postgresql_where="NOT paused",
    )
    op.create_table(
        "schedule_fires",
        sa.Column("schedule_id", sa.Uuid(), nullable=False),
        sa.Column("fire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "fired_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "outcome IN ('STARTED', 'SKIPPED', 'REFUSED')",
            name=op.f("ck_schedule_fires_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["tasks.schedules.id"],
            name=op.f("fk_schedule_fires_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.tasks.id"],
            name=op.f("fk_schedule_fires_task_id_tasks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("schedule_id", "fire_time", name=op.f("pk_schedule_fires")),
        schema="tasks",
    )
    op.create_index(
        "ix_schedule_fires_task_id", "schedule_fires", ["task_id"], unique=False, schema="tasks"
    )
    op.add_column("tasks", sa.Column("schedule_id", sa.Uuid(), nullable=True), schema="tasks")
    op.create_foreign_key(
        op.f("fk_tasks_schedule_id_schedules"),
        "tasks",
        "schedules",
        ["schedule_id"],
        ["id"],
        source_schema="tasks",
        referent_schema="tasks",
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_tasks_schedule_created",
        "tasks",
        ["schedule_id", "created_at", "id"],
        unique=False,
        schema="tasks",
        postgresql_where=sa.text("schedule_id IS NOT NULL"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_tasks_schedule_created", table_name="tasks", schema="tasks")
    op.drop_constraint(
        op.f("fk_tasks_schedule_id_schedules"), "tasks", schema="tasks", type_="foreignkey"
    )
    op.drop_column("tasks", "schedule_id", schema="tasks")
    op.drop_index("ix_schedule_fires_task_id", table_name="schedule_fires", schema="tasks")
    op.drop_table("schedule_fires", schema="tasks")
    op.drop_index("ix_schedules_due", table_name="schedules", schema="tasks")
    op.drop_index("ix_schedules_owner_created", table_name="schedules", schema="tasks")
    op.drop_table("schedules", schema="tasks")
