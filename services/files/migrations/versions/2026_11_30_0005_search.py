"""file search: the filename's and the text content's tsvectors, GIN-indexed

Revision ID: 0005_search
Revises: 0004_users
Create Date: 2026-11-30 15:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_search"
down_revision = "0004_users"
branch_labels = None
depends_on = None

# Fixed here, not imported: a migration must not change when the model does.
NAME_VECTOR_SQL = (
    "setweight(to_tsvector('simple', regexp_replace(filename, '[^[:alnum:]]+', ' ', 'g')), 'A')"
)


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "files",
        sa.Column(
            "name_vector",
            postgresql.TSVECTOR(),
            sa.Computed(NAME_VECTOR_SQL, persisted=True),
            nullable=True,
        ),
        schema="files",
    )
    op.add_column(
        "files", sa.Column("content_vector", postgresql.TSVECTOR(), nullable=True), schema="files"
    )
    op.create_index(
        "ix_files_name_vector", "files", ["name_vector"], schema="files", postgresql_using="gin"
    )
    op.create_index(
        "ix_files_content_vector",
        "files",
        ["content_vector"],
        schema="files",
        postgresql_using="gin",
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_files_content_vector", table_name="files", schema="files")
    op.drop_index("ix_files_name_vector", table_name="files", schema="files")
    op.drop_column("files", "content_vector", schema="files")
    op.drop_column("files", "name_vector", schema="files")
