"""sign in with OpenID Connect: identities, pending sign-ins, users without a password

Revision ID: 0002_oidc
Revises: 0001
Create Date: 2026-11-30 13:57:44.499442
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_oidc"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "oidc_logins",
        sa.Column("state", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_oidc_logins")),
        schema="auth",
    )
    op.create_index(
        op.f("ix_auth_oidc_logins_expires_at"),
        "oidc_logins",
        ["expires_at"],
        unique=False,
        schema="auth",
    )
    op.create_table(
        "identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_login_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth.users.id"],
            name=op.f("fk_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("provider", "subject", name="uq_identities_provider_subject"),
        schema="auth",
    )
    op.create_index(
        op.f("ix_auth_identities_user_id"), "identities", ["user_id"], unique=False, schema="auth"
    )
    op.alter_column(
        "users", "password_hash", existing_type=sa.VARCHAR(length=255), nullable=True, schema="auth"
    )


def downgrade() -> None:
    """Revert this revision (fails while a user without a password exists)."""
    op.alter_column(
        "users",
        "password_hash",
        existing_type=sa.VARCHAR(length=255),
        nullable=False,
        schema="auth",
    )
    op.drop_index(op.f("ix_auth_identities_user_id"), table_name="identities", schema="auth")
    op.drop_table("identities", schema="auth")
    op.drop_index(op.f("ix_auth_oidc_logins_expires_at"), table_name="oidc_logins", schema="auth")
    op.drop_table("oidc_logins", schema="auth")
