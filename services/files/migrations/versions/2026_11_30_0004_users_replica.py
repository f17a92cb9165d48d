"""users replica kept from auth's UserRegistered and UserDeleted

Revision ID: 0004_users
Revises: 0003
Create Date: 2026-11-30 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_users"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    # Users registered before this revision get their row on their first request (the token
    # proves them; see shared.user_replica), so nothing is backfilled from auth.
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        schema="files",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("users", schema="files")
