"""Alembic environment of the auth service."""

from services.auth.models import SCHEMA, Base
from shared.migrations import run_migrations

run_migrations(schema=SCHEMA, metadata=Base.metadata)
