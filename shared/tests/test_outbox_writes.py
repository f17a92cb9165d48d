"""The unit of work numbers each aggregate's events in order and wakes the relay."""

from __future__ import annotations

import select

from sqlalchemy import text

from shared.db import NestedUnitOfWork, UnitOfWork, outbox_channel, session_factory
from shared.tests.messaging_support import OrderProbed


def outbox_rows(engine, probe_ids: tuple[str, ...]) -> list[tuple[str, int, int]]:
    with engine.connect() as conn:
        return [
            (row.aggregate_id, row.sequence, row.payload["n"])
            for row in conn.execute(
                text(
                    "SELECT aggregate_id, sequence, payload FROM outbox"
                    " WHERE aggregate_type = 'order-probe' AND aggregate_id = ANY(:ids)"
                    " ORDER BY id"
                ),
                {"ids": list(probe_ids)},
            )
        ]


def test_events_are_numbered_per_aggregate_in_the_order_they_were_added(auth_engine):
    a, b = "seq-a", "seq-b"
    uow = UnitOfWork(session_factory(auth_engine), schema="auth", source="auth")
    with uow:
        for n, probe_id in enumerate([a, b, a, a, b]):
            uow.add_event(OrderProbed(probe_id=probe_id, n=n))
        uow.commit()
    with uow:
        uow.add_event(OrderProbed(probe_id=a, n=5))
        uow.commit()
    assert outbox_rows(auth_engine, (a, b)) == [
        (a, 1, 0),
        (b, 1, 1),
        (a, 2, 2),
        (a, 3, 3),
        (b, 2, 4),
        (a, 4, 5),
    ]
    with auth_engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox WHERE aggregate_id IN ('seq-a', 'seq-b')"))


def test_a_commit_with_events_notifies_the_relay_and_a_rollback_writes_nothing(auth_engine):
    raw = auth_engine.raw_connection()
    listener = raw.driver_connection
    listener.autocommit = True
    try:
        with listener.cursor() as cursor:
            cursor.execute(f'LISTEN "{outbox_channel("auth")}"')
        uow = UnitOfWork(session_factory(auth_engine), schema="auth", source="auth")
        with uow:
            uow.add_event(OrderProbed(probe_id="rolled-back", n=0))
            uow.rollback()
        assert outbox_rows(auth_engine, ("rolled-back",)) == []
        with uow:
            uow.add_event(OrderProbed(probe_id="notifying", n=0))
            uow.commit()
        readable, _, _ = select.select([listener], [], [], 5)
        assert readable, "no NOTIFY within 5 s"
        listener.poll()
        assert listener.notifies
    finally:
        with listener.cursor() as cursor:
            cursor.execute("UNLISTEN *")
        raw.close()
        with auth_engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox WHERE aggregate_id = 'notifying'"))


def test_a_nested_unit_of_work_commits_only_with_the_outer_one(auth_engine):
    outer = UnitOfWork(session_factory(auth_engine), schema="auth", source="auth")
    with outer:
        outer.add_event(OrderProbed(probe_id="nest-outer", n=0))
        with NestedUnitOfWork(outer) as kept:
            kept.add_event(OrderProbed(probe_id="nest-kept", n=1))
            kept.commit()
        with NestedUnitOfWork(outer) as dropped:
            dropped.add_event(OrderProbed(probe_id="nest-dropped", n=2))
            # Left without a commit (a use case that raised): back to the savepoint.
        assert outbox_rows(auth_engine, ("nest-outer", "nest-kept")) == []
        outer.commit()
    try:
        assert outbox_rows(auth_engine, ("nest-outer", "nest-kept", "nest-dropped")) == [
            ("nest-outer", 1, 0),
            ("nest-kept", 1, 1),
        ]
    finally:
        with auth_engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox WHERE aggregate_id LIKE 'nest-%'"))
