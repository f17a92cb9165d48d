"""Sagas on real PostgreSQL: persisted by the store, advanced by replies and the sweep, seen
through the metric and the `dockyard sagas` command (on the auth schema's sagas table)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import MetaData, select, text
from sqlalchemy.orm import Session

from shared.config import CommonSettings
from shared.events import Envelope, Event
from shared.outbox.tables import add_messaging_tables
from shared.registry import Service, ServiceRegistry
from shared.sagas import cli
from shared.sagas.machine import SagaDefinition, SagaState, Step
from shared.sagas.metrics import SagaCollector
from shared.sagas.store import Sagas
from shared.sagas.tables import add_saga_table

METADATA = MetaData(schema="auth")
TABLES = add_messaging_tables(METADATA)
SAGA_TABLE = add_saga_table(METADATA)


@dataclass(frozen=True)
class DemoRequested(Event):
    """What the demo saga's step asks of the participants."""

    aggregate_type = "demo"
    aggregate_field = "saga_id"

    saga_id: str
    subject: str


def _definition(timeout: float = 60.0, attempts: int = 3) -> SagaDefinition:
    def ask(ctx) -> None:
        ctx.emit(DemoRequested(saga_id=ctx.saga_id, subject=ctx.data["subject"]))

    def finish(ctx) -> None:
        ctx.session.execute(
            text(
                "INSERT INTO probe_log (consumer, event_id, aggregate_id, sequence, n)"
                " VALUES ('saga-demo', gen_random_uuid(), :s, 0, 1)"
            ),
            {"s": ctx.data["subject"]},
        )

    return SagaDefinition(
        "demo",
        (
            Step(
                "ask",
                ask,
                timedelta(seconds=timeout),
                awaits=frozenset({"a.Done", "b.Done"}),
                attempts=attempts,
            ),
            Step("finish", finish, timedelta(seconds=timeout)),
        ),
    )


def _sagas(**options) -> Sagas:
    return Sagas(SAGA_TABLE, (_definition(**options),), source="auth")


def _reply(routing_key: str, saga_id: str) -> Envelope:
    source, kind = routing_key.split(".")
    return Envelope(
        id=str(uuid.uuid4()),
        type=kind,
        version=1,
        source=source,
        occurred_at=datetime.now(UTC).isoformat(),
        aggregate_type="demo",
        aggregate_id=saga_id,
        sequence=1,
        correlation_id=None,
        payload={"saga_id": saga_id},
    )


def _start(engine, sagas: Sagas, subject: str) -> str:
    with Session(engine) as session, session.begin():
        return sagas.start(session, kind="demo", subject=subject, data={"subject": subject}).id


def _requests(engine, saga_id: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            select(text("count(*)"))
            .select_from(TABLES.outbox)
            .where(TABLES.outbox.c.event_type == "DemoRequested")
            .where(TABLES.outbox.c.aggregate_id == saga_id)
        )


def _state(engine, sagas: Sagas, saga_id: str):
    with Session(engine) as session:
        return sagas.get(session, saga_id)


def test_a_saga_is_persisted_asks_through_the_outbox_and_finishes_on_every_reply(auth_engine):
    sagas = _sagas()
    subject = uuid.uuid4().hex
    saga_id = _start(auth_engine, sagas, subject)
    assert _requests(auth_engine, saga_id) == 1
    assert _state(auth_engine, sagas, saga_id).state == SagaState.RUNNING

    for key in ("a.Done", "a.Done", "b.Done"):
        with Session(auth_engine) as session, session.begin():
            sagas.handle_reply(_reply(key, saga_id), session)

    saga = _state(auth_engine, sagas, saga_id)
    assert saga.state == SagaState.SUCCEEDED and saga.deadline is None
    assert [entry["what"] for entry in saga.history].count("ignored") == 1
    with auth_engine.connect() as conn:
        assert (
            conn.scalar(
                text(
                    "SELECT count(*) FROM probe_log"
                    " WHERE consumer = 'saga-demo' AND aggregate_id = :s"
                ),
                {"s": subject},
            )
            == 1
        )


def test_starting_twice_for_one_subject_returns_the_live_saga(auth_engine):
    sagas = _sagas()
    subject = uuid.uuid4().hex
    assert _start(auth_engine, sagas, subject) == _start(auth_engine, sagas, subject)


def test_a_reply_naming_no_saga_is_ignored(auth_engine):
    with Session(auth_engine) as session, session.begin():
        _sagas().handle_reply(_reply("a.Done", str(uuid.uuid4())), session)
        _sagas().handle_reply(_reply("a.Done", "not-a-uuid"), session)


def test_the_sweep_asks_again_then_fails_the_saga_with_its_reason(auth_engine):
    sagas = _sagas(timeout=0.2, attempts=2)
    saga_id = _start(auth_engine, sagas, uuid.uuid4().hex)
    with Session(auth_engine) as session, session.begin():
        sagas.handle_reply(_reply("b.Done", saga_id), session)
    time.sleep(0.3)
    assert saga_id in sagas.sweep(auth_engine)
    assert _requests(auth_engine, saga_id) == 2
    time.sleep(0.3)
    assert saga_id in sagas.sweep(auth_engine)

    saga = _state(auth_engine, sagas, saga_id)
    assert saga.state == SagaState.FAILED
    assert saga.reason == "step 'ask' timed out 2 times waiting for a.Done"

    exposition = CollectorRegistry()
    exposition.register(SagaCollector(auth_engine, sagas))
    metrics = generate_latest(exposition).decode()
    failed = [
        line for line in metrics.splitlines() if line.startswith('dockyard_sagas{state="FAILED"}')
    ]
    assert failed and float(failed[0].split()[-1]) >= 1


def test_a_saga_of_a_kind_this_process_does_not_know_does_not_stop_the_sweep(auth_engine):
    sagas = _sagas(timeout=0.2, attempts=5)
    saga_id = _start(auth_engine, sagas, uuid.uuid4().hex)
    with auth_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE auth.sagas SET kind = 'retired', deadline = now() - interval '1 hour'"
                " WHERE id = :id"
            ),
            {"id": saga_id},
        )
    known_id = _start(auth_engine, sagas, uuid.uuid4().hex)
    time.sleep(0.3)
    swept = sagas.sweep(auth_engine)
    assert known_id in swept and saga_id not in swept


@pytest.fixture
def demo_registry(test_env):
    """A registry whose auth service orchestrates the demo saga (steps time out at once)."""
    service = Service(
        "auth",
        CommonSettings,
        tables=TABLES,
        migrations=test_env.services.get("auth").migrations,
        sagas=lambda: _sagas(timeout=0.2, attempts=1),
    )
    return ServiceRegistry((service,))


def test_the_command_lists_shows_and_retries_a_failed_saga(auth_engine, demo_registry, capsys):
    sagas = _sagas(timeout=0.2, attempts=1)
    saga_id = _start(auth_engine, sagas, uuid.uuid4().hex)
    time.sleep(0.3)
    assert cli.main(["sweep", "auth", "--once"], registry=demo_registry) == 0
    capsys.readouterr()

    assert cli.main(["list", "--state", "failed"], registry=demo_registry) == 0
    listed = capsys.readouterr().out
    assert saga_id in listed and "timed out 1 times waiting for a.Done, b.Done" in listed

    assert cli.main(["show", saga_id], registry=demo_registry) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "FAILED" and shown["history"][0]["what"] == "started"

    assert cli.main(["retry", saga_id], registry=demo_registry) == 0
    retried = json.loads(capsys.readouterr().out)
    assert retried["state"] == "RUNNING" and retried["reason"] is None
    assert _requests(auth_engine, saga_id) == 2

    assert cli.main(["retry", saga_id], registry=demo_registry) == 1
    assert "not FAILED" in capsys.readouterr().err
    assert cli.main(["show", str(uuid.uuid4())], registry=demo_registry) == 1
