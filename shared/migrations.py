"""Alembic glue: one migration tree per service, version table inside the service's schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool


def alembic_config(folder: Path, url: str) -> Config:
    """An Alembic config for the migration tree in `folder` (a registry entry's `migrations`)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return cfg


def upgrade(folder: Path, url: str, revision: str = "head") -> None:
    """Run the migrations in `folder` up to `revision`."""
    command.upgrade(alembic_config(folder, url), revision)


def run_migrations(*, schema: str, metadata: MetaData) -> None:
    """Body of a service's env.py: migrate online, tracking versions in its own schema."""
    url = context.config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # No search_path here: migrations name their schema, and reflection then sees this
        # service's tables under that name, as the metadata declares them.
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, _parent: (
                name == schema
                if type_ == "schema"
                else not (type_ == "table" and name == "alembic_version")
            ),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
