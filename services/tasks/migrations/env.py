"""Alembic environment of the tasks service."""

from services.tasks.models import SCHEMA, Base
from shared.migrations import run_migrations

run_migrations(schema=SCHEMA, metadata=Base.metadata)
