"""The inbox admits each event once and judges its sequence against everything applied before it."""

from __future__ import annotations

import uuid

from services.auth.models import messaging_tables
from shared.db import session_factory
from shared.events import Envelope
from shared.messaging.inbox import Inbox


def event(aggregate: str, sequence: int, id_: str | None = None) -> Envelope:
    """An envelope of aggregate `aggregate` numbered `sequence`."""
    return Envelope(
        id=id_ or str(uuid.uuid4()),
        type="InboxProbed",
        version=1,
        source="auth",
        occurred_at="2026-01-01T00:00:00+00:00",
        aggregate_type="inbox-probe",
        aggregate_id=aggregate,
        sequence=sequence,
        correlation_id=None,
        payload={},
    )


def test_duplicates_and_older_sequences_are_told_apart_within_a_batch_and_across_batches(
    auth_engine,
):
    inbox, consumer = Inbox(messaging_tables), f"test.inbox-{uuid.uuid4().hex[:8]}"
    sessions = session_factory(auth_engine)
    first, third, second = event("x", 1), event("x", 3), event("x", 2)
    other = event("y", 5)
    with sessions.begin() as session:
        admitted = inbox.admit(session, consumer, [first, third, second, third, other])
    assert [(a.duplicate, a.last_sequence) for a in admitted] == [
        (False, None),
        (False, None),
        (False, 3),  # below an event earlier in the same batch
        (True, None),  # the same id twice
        (False, None),
    ]
    with sessions.begin() as session:
        again = inbox.admit(session, consumer, [first, event("x", 3), event("x", 4)])
    assert [(a.duplicate, a.last_sequence) for a in again] == [
        (True, None),
        (False, 3),  # a new id at the position already applied
        (False, None),
    ]
    with sessions.begin() as session:
        positions = dict(
            session.execute(
                messaging_tables.inbox_positions.select()
                .with_only_columns(
                    messaging_tables.inbox_positions.c.aggregate_id,
                    messaging_tables.inbox_positions.c.last_sequence,
                )
                .where(messaging_tables.inbox_positions.c.consumer == consumer)
            ).all()
        )
        recorded = session.execute(
            messaging_tables.inbox.select().where(messaging_tables.inbox.c.consumer == consumer)
        ).all()
    assert positions == {"x": 4, "y": 5}
    assert len(recorded) == 6


def test_aggregate_ids_that_array_syntax_would_misread_are_kept_as_they_are(auth_engine):
    inbox, consumer = Inbox(messaging_tables), f"test.inbox-{uuid.uuid4().hex[:8]}"
    sessions = session_factory(auth_engine)
    awkward = ['a"b', "c\\d", "e,f", "{g}", "NULL", " h ", "", "ünï"]
    with sessions.begin() as session:
        admitted = inbox.admit(session, consumer, [event(a, 7) for a in awkward])
        again = inbox.admit(session, consumer, [event(a, 6) for a in awkward])
    assert [a.last_sequence for a in admitted] == [None] * len(awkward)
    assert [a.last_sequence for a in again] == [7] * len(awkward)
    positions = messaging_tables.inbox_positions
    with sessions.begin() as session:
        stored = session.execute(
            positions.select()
            .with_only_columns(positions.c.aggregate_id, positions.c.last_sequence)
            .where(positions.c.consumer == consumer)
        ).all()
    assert sorted(stored) == sorted((a, 7) for a in awkward)
