"""Files's tables, all in the `files` schema."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from shared.db import NAMING_CONVENTION
from shared.outbox.tables import add_messaging_tables

SCHEMA = "files"


class Base(DeclarativeBase):
    """Declarative base bound to the files schema."""

    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


messaging_tables = add_messaging_tables(Base.metadata)
