"""notifications: rules, webhooks, notifications, their deliveries, and users.email

Revision ID: 0009_notifications
Revises: 0008_task_outputs
Create Date: 2026-11-30 18:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009_notifications"
down_revision = "0008_task_outputs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("users", sa.Column("email", sa.String(length=320), nullable=True), schema="tasks")
    op.create_table(
        "notification_rules",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("channels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("owner_id", "event", name=op.f("pk_notification_rules")),
        schema="tasks",
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
        schema="tasks",
    )
    op.create_index(
        "ix_webhooks_owner_created", "webhooks", ["owner_id", "created_at"], schema="tasks"
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("source_event_id", sa.Uuid(), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        schema="tasks",
    )
    op.create_index(
        "ix_notifications_owner_created",
        "notifications",
        ["owner_id", "created_at", "id"],
        schema="tasks",
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'DELIVERED', 'FAILED', 'SKIPPED')",
            name=op.f("ck_notification_deliveries_delivery_status"),
        ),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["tasks.notifications.id"],
            name=op.f("fk_notification_deliveries_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["tasks.webhooks.id"],
            name=op.f("fk_notification_deliveries_webhook_id_webhooks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_notification_deliveries_idempotency_key")
        ),
        schema="tasks",
    )
    op.create_index(
        "ix_notification_deliveries_notification",
        "notification_deliveries",
        ["notification_id"],
        schema="tasks",
    )
    op.create_index(
        "ix_notification_deliveries_pending",
        "notification_deliveries",
        ["updated_at"],
        schema="tasks",
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(
        "ix_notification_deliveries_pending", table_name="notification_deliveries", schema="tasks"
    )
    op.drop_index(
        "ix_notification_deliveries_notification",
        table_name="notification_deliveries",
        schema="tasks",
    )
    op.drop_table("notification_deliveries", schema="tasks")
    op.drop_index("ix_notifications_owner_created", table_name="notifications", schema="tasks")
    op.drop_table("notifications", schema="tasks")
    op.drop_index("ix_webhooks_owner_created", table_name="webhooks", schema="tasks")
    op.drop_table("webhooks", schema="tasks")
    op.drop_table("notification_rules", schema="tasks")
    op.drop_column("users", "email", schema="tasks")
