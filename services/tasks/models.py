"""Tasks's tables, all in the `tasks` schema."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from shared.db import NAMING_CONVENTION
from shared.outbox.tables import add_messaging_tables

SCHEMA = "tasks"


class Base(DeclarativeBase):
    """Declarative base bound to the tasks schema."""

    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


messaging_tables = add_messaging_tables(Base.metadata)
