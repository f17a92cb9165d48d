"""The sagas table, added to an orchestrating service's own schema metadata."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB


def add_saga_table(metadata: MetaData) -> Table:
    """Declare the `sagas` table on a service's metadata (so its migrations create it)."""
    return Table(
        "sagas",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("kind", String(100), nullable=False),
        #: What the saga is about (a user id for an account deletion): one live saga per subject.
        Column("subject", String(200), nullable=False),
        Column("state", String(20), nullable=False),
        Column("step", String(100), nullable=False),
        #: How many times the current step was started (its timeouts start it again).
        Column("attempt", Integer, nullable=False, server_default=text("1")),
        #: The saga's inputs, handed to every step.
        Column("data", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        #: The replies the current step has had so far (routing keys).
        Column("received", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Column("history", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        #: When the current step (or compensation) times out; None once the saga has ended.
        Column("deadline", DateTime(timezone=True)),
        Column("reason", Text),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # The sweep reads live sagas by deadline; the metric counts by state.
        Index("ix_sagas_state_deadline", "state", "deadline"),
        Index("ix_sagas_kind_subject", "kind", "subject"),
    )
