"""file search documents: a text file's content vector moves out of the files row

Revision ID: 0006_search_documents
Revises: 0005_search
Create Date: 2026-11-30 17:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_search_documents"
down_revision = "0005_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "file_search_documents",
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("content_vector", postgresql.TSVECTOR(), nullable=False),
        sa.Column(
            "indexed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.files.id"],
            name=op.f("fk_file_search_documents_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_file_search_documents")),
        schema="files",
    )
    op.create_index(
        "ix_file_search_documents_content_vector",
        "file_search_documents",
        ["content_vector"],
        schema="files",
        postgresql_using="gin",
    )
    # Files indexed before this revision keep their words.
    op.execute(
        "INSERT INTO files.file_search_documents (file_id, content_vector)"
        " SELECT id, content_vector FROM files.files WHERE content_vector IS NOT NULL"
    )
    op.drop_index("ix_files_content_vector", table_name="files", schema="files")
    op.drop_column("files", "content_vector", schema="files")


def downgrade() -> None:
    """Revert this revision."""
    op.add_column(
        "files", sa.Column("content_vector", postgresql.TSVECTOR(), nullable=True), schema="files"
    )
    op.execute(
        "UPDATE files.files AS f SET content_vector = d.content_vector"
        " FROM files.file_search_documents AS d WHERE d.file_id = f.id"
    )
    op.create_index(
        "ix_files_content_vector",
        "files",
        ["content_vector"],
        schema="files",
        postgresql_using="gin",
    )
    op.drop_index(
        "ix_file_search_documents_content_vector",
        table_name="file_search_documents",
        schema="files",
    )
    op.drop_table("file_search_documents", schema="files")
