"""Alembic environment of the files service."""

from services.files.models import SCHEMA, Base
from shared.migrations import run_migrations

run_migrations(schema=SCHEMA, metadata=Base.metadata)
