"""A service's users replica: order-tolerant, idempotent events and a gate that admits callers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.files.models import users
from shared.auth import TokenSubjectInvalid
from shared.db import make_engine, session_factory
from shared.events import Envelope
from shared.user_replica import AccountDeleted, UserGate, apply_user_event

REGISTERED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DELETED_AT = REGISTERED_AT + timedelta(hours=1)


@pytest.fixture(scope="module")
def files_engine(test_env):
    """An engine on the files schema, whose `users` table is a replica like tasks' own."""
    engine = make_engine(test_env.service_url("files"), schema="files", pool_size=2)
    yield engine
    engine.dispose()


def user_event(event_type: str, user_id: uuid.UUID, occurred: datetime) -> Envelope:
    """An auth user event as the consumer hands it to a handler."""
    return Envelope(
        id=str(uuid.uuid4()),
        type=event_type,
        version=1,
        source="auth",
        occurred_at=occurred.isoformat(),
        aggregate_type="user",
        aggregate_id=str(user_id),
        sequence=1,
        correlation_id=None,
        payload={"user_id": str(user_id), "email": "someone@example.com"},
    )


def apply(engine, *envelopes: Envelope) -> None:
    """Apply each event in a transaction of its own, as the consumer would."""
    sessions = session_factory(engine)
    for envelope in envelopes:
        with sessions() as session, session.begin():
            apply_user_event(session, users, envelope)


def replica_row(engine, user_id: uuid.UUID):
    """The user's replica row, or None."""
    with engine.connect() as connection:
        return connection.execute(select(users).where(users.c.id == user_id)).one_or_none()


def test_a_user_deleted_before_their_registration_arrives_stays_deleted(files_engine):
    user_id = uuid.uuid4()
    apply(
        files_engine,
        user_event("UserDeleted", user_id, DELETED_AT),
        user_event("UserRegistered", user_id, REGISTERED_AT),
    )
    row = replica_row(files_engine, user_id)
    assert (row.registered_at, row.deleted_at) == (REGISTERED_AT, DELETED_AT)


def test_user_events_applied_twice_change_nothing_the_first_time_did_not(files_engine):
    user_id = uuid.uuid4()
    registered = user_event("UserRegistered", user_id, REGISTERED_AT)
    deleted = user_event("UserDeleted", user_id, DELETED_AT)
    apply(files_engine, registered, deleted)
    apply(
        files_engine,
        user_event("UserRegistered", user_id, REGISTERED_AT + timedelta(days=1)),
        user_event("UserDeleted", user_id, DELETED_AT + timedelta(days=1)),
    )
    row = replica_row(files_engine, user_id)
    assert (row.registered_at, row.deleted_at) == (REGISTERED_AT, DELETED_AT)


def test_the_gate_admits_a_user_it_has_not_heard_of_and_the_registration_confirms_them(
    files_engine,
):
    user_id = uuid.uuid4()
    UserGate(files_engine, users).admit(str(user_id))
    early = replica_row(files_engine, user_id)
    assert early is not None and early.registered_at is None and early.deleted_at is None

    apply(files_engine, user_event("UserRegistered", user_id, REGISTERED_AT))
    row = replica_row(files_engine, user_id)
    assert (row.registered_at, row.first_seen_at) == (REGISTERED_AT, early.first_seen_at)


def test_the_gate_refuses_a_deleted_user_even_if_it_admitted_them_before(files_engine):
    user_id = uuid.uuid4()
    gate = UserGate(files_engine, users, cache_seconds=0)
    gate.admit(str(user_id))
    apply(files_engine, user_event("UserDeleted", user_id, DELETED_AT))
    with pytest.raises(AccountDeleted):
        gate.admit(str(user_id))


def test_the_gate_refuses_a_subject_that_is_not_a_user_id(files_engine):
    with pytest.raises(TokenSubjectInvalid):
        UserGate(files_engine, users).admit("not-a-uuid")
