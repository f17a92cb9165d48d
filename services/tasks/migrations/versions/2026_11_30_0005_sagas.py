"""the sagas table (task input files and outputs)

Revision ID: 0005_sagas
Revises: 0004_users
Create Date: 2026-11-30 15:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_sagas"
down_revision = "0004_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "sagas",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "received",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "history",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sagas")),
        schema="tasks",
    )
    op.create_index(
        "ix_sagas_state_deadline", "sagas", ["state", "deadline"], unique=False, schema="tasks"
    )
    op.create_index(
        "ix_sagas_kind_subject", "sagas", ["kind", "subject"], unique=False, schema="tasks"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_sagas_kind_subject", table_name="sagas", schema="tasks")
    op.drop_index("ix_sagas_state_deadline", table_name="sagas", schema="tasks")
    op.drop_table("sagas", schema="tasks")
