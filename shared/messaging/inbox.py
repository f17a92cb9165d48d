"""The consumers' inbox: drops redelivered events by id and tracks each aggregate's sequence.

`inbox` holds (consumer, event id) for every event a subscription committed: inserting it in the
handler's transaction is what makes a redelivery a duplicate. `inbox_positions` holds the highest
sequence applied per (consumer, aggregate): an event at or below it (with a new id) is out of
order, and its row's `note` says so. The position never moves backwards.

The bookkeeping takes three statements per batch, not per event, and their text never changes
(arrays, not VALUES lists), so SQLAlchemy compiles them once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, delete, func, text, update
from sqlalchemy.orm import Session

from shared.events import Envelope
from shared.outbox.tables import MessagingTables


@dataclass(frozen=True)
class Admission:
    """What the inbox made of one delivered event."""

    envelope: Envelope
    #: The inbox already had the event (or it came twice in the batch): do not handle it again.
    duplicate: bool = False
    #: Set when the event's sequence is not above the last one applied for its aggregate.
    last_sequence: int | None = None


def _qualified(table: Table) -> str:
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


class Inbox:
    """One schema's inbox tables, as the consumers of that service use them."""

    def __init__(self, tables: MessagingTables) -> None:
        self.inbox: Table = tables.inbox
        self.positions: Table = tables.inbox_positions
        inbox_name, positions_name = _qualified(self.inbox), _qualified(self.positions)
        self._record = text(
            f"INSERT INTO {inbox_name} (consumer, message_id)"
            " SELECT :consumer, id FROM unnest(CAST(:ids AS uuid[])) AS u(id)"
            " ON CONFLICT DO NOTHING RETURNING message_id"
        )
        self._lock_positions = text(
            f"SELECT p.aggregate_type, p.aggregate_id, p.last_sequence FROM {positions_name} p"
            " JOIN unnest(CAST(:types AS text[]), CAST(:ids AS text[])) AS k(t, a)"
            " ON p.aggregate_type = k.t AND p.aggregate_id = k.a"
            " WHERE p.consumer = :consumer"
            " ORDER BY p.aggregate_type, p.aggregate_id FOR UPDATE OF p"
        )
        self._advance = text(
            f"INSERT INTO {positions_name} AS p"
            " (consumer, aggregate_type, aggregate_id, last_sequence)"
            " SELECT :consumer, t, a, s FROM unnest(CAST(:types AS text[]), CAST(:ids AS text[]),"
            " CAST(:sequences AS bigint[])) AS k(t, a, s)"
            " ON CONFLICT (consumer, aggregate_type, aggregate_id)"
            " DO UPDATE SET last_sequence = GREATEST(p.last_sequence, EXCLUDED.last_sequence)"
        )

    def admit(
        self, session: Session, consumer: str, envelopes: Sequence[Envelope]
    ) -> list[Admission]:
        """Record `envelopes` for `consumer` in `session`'s transaction; one admission each.

        The positions of the batch's aggregates are row-locked until the transaction ends, so
        consumers sharing a queue check one aggregate's sequence one at a time.
        """
        ids = [str(uuid.UUID(envelope.id)) for envelope in envelopes]
        inserted = {
            str(message_id)
            for message_id in session.execute(
                self._record, {"consumer": consumer, "ids": ids}
            ).scalars()
        }
        fresh: list[Envelope] = []
        for envelope, id_ in zip(envelopes, ids, strict=True):
            if id_ in inserted:
                inserted.discard(id_)  # a second copy in the same batch is a duplicate
                fresh.append(envelope)
        stale = self._check_sequences(session, consumer, fresh) if fresh else {}
        fresh_ids = {envelope.id for envelope in fresh}
        admissions = []
        for envelope in envelopes:
            if envelope.id in fresh_ids:
                fresh_ids.discard(envelope.id)
                admissions.append(Admission(envelope, last_sequence=stale.get(envelope.id)))
            else:
                admissions.append(Admission(envelope, duplicate=True))
        return admissions

    def _check_sequences(
        self, session: Session, consumer: str, fresh: list[Envelope]
    ) -> dict[str, int]:
        """Advance the positions past `fresh`; returns event id -> last sequence for stale ones."""
        keys = sorted({(e.aggregate_type, e.aggregate_id) for e in fresh})
        applied: dict[tuple[str, str], int] = {
            (aggregate_type, aggregate_id): last_sequence
            for aggregate_type, aggregate_id, last_sequence in session.execute(
                self._lock_positions,
                {
                    "consumer": consumer,
                    "types": [key[0] for key in keys],
                    "ids": [key[1] for key in keys],
                },
            )
        }
        advanced: dict[tuple[str, str], int] = {}
        stale: dict[str, int] = {}
        for envelope in fresh:
            key = (envelope.aggregate_type, envelope.aggregate_id)
            last = applied.get(key)
            if last is not None and envelope.sequence <= last:
                stale[envelope.id] = last
                self._note(session, consumer, envelope, last)
            else:
                applied[key] = advanced[key] = envelope.sequence
        if advanced:
            session.execute(
                self._advance,
                {
                    "consumer": consumer,
                    "types": [key[0] for key in advanced],
                    "ids": [key[1] for key in advanced],
                    "sequences": list(advanced.values()),
                },
            )
        return stale

    def _note(self, session: Session, consumer: str, envelope: Envelope, last: int) -> None:
        positions = self.positions
        session.execute(
            update(positions)
            .where(
                positions.c.consumer == consumer,
                positions.c.aggregate_type == envelope.aggregate_type,
                positions.c.aggregate_id == envelope.aggregate_id,
            )
            .values(
                note=f"{datetime.now(UTC).isoformat(timespec='seconds')}: sequence "
                f"{envelope.sequence} (event {envelope.id}) arrived after {last}"
            )
        )

    def prune(self, session: Session, consumers: Sequence[str], *, older_than_days: float) -> int:
        """Delete the inbox rows of `consumers` older than `older_than_days`; returns how many."""
        cutoff = func.now() - timedelta(days=older_than_days)
        return session.execute(
            delete(self.inbox).where(
                self.inbox.c.consumer.in_(list(consumers)), self.inbox.c.processed_at < cutoff
            )
        ).rowcount
