"""accounts: users.email_verified, mailed single-use tokens, sent emails

Revision ID: 0003_accounts
Revises: 0002_oidc
Create Date: 2026-11-30 14:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_accounts"
down_revision = "0002_oidc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "users",
        sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema="auth",
    )
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth.users.id"],
            name=op.f("fk_account_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
        schema="auth",
    )
    op.create_index(
        op.f("ix_auth_account_tokens_user_id"),
        "account_tokens",
        ["user_id"],
        unique=False,
        schema="auth",
    )
    op.create_table(
        "sent_emails",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column(
            "sent_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_sent_emails")),
        schema="auth",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("sent_emails", schema="auth")
    op.drop_index(
        op.f("ix_auth_account_tokens_user_id"), table_name="account_tokens", schema="auth"
    )
    op.drop_table("account_tokens", schema="auth")
    op.drop_column("users", "email_verified", schema="auth")
