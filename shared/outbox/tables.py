"""The outbox and inbox tables, added to each service's own schema metadata."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class MessagingTables:
    """Handles on one service's outbox, sequence, inbox and inbox-position tables."""

    outbox: Table
    outbox_sequences: Table
    inbox: Table
    inbox_positions: Table


def add_messaging_tables(metadata: MetaData) -> MessagingTables:
    """Declare the messaging tables on a service's metadata (so its migrations create them)."""
    outbox = Table(
        "outbox",
        metadata,
        # Publication order: ids are taken after the aggregate's sequence lock (see shared.db).
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("event_type", String(200), nullable=False),
        Column("event_version", Integer, nullable=False),
        Column("source", String(50), nullable=False),
        Column("aggregate_type", String(100), nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("sequence", BigInteger, nullable=False),
        Column("correlation_id", String(200)),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("payload", JSONB, nullable=False),
    )
    outbox_sequences = Table(
        "outbox_sequences",
        metadata,
        Column("aggregate_type", String(100), nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("last_sequence", BigInteger, nullable=False),
        PrimaryKeyConstraint("aggregate_type", "aggregate_id"),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(200), nullable=False),
        Column("message_id", Uuid, nullable=False),
        # Indexed for the consumer's pruning of old rows (see shared.messaging.inbox).
        Column(
            "processed_at",
            DateTime(timezone=True),
            nullable=False,
            server_default=func.now(),
            index=True,
        ),
        PrimaryKeyConstraint("consumer", "message_id"),
    )
    inbox_positions = Table(
        "inbox_positions",
        metadata,
        Column("consumer", String(200), nullable=False),
        Column("aggregate_type", String(100), nullable=False),
        Column("aggregate_id", String(100), nullable=False),
        Column("last_sequence", BigInteger, nullable=False),
        Column("note", Text),
        PrimaryKeyConstraint("consumer", "aggregate_type", "aggregate_id"),
    )
    return MessagingTables(outbox, outbox_sequences, inbox, inbox_positions)
