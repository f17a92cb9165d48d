"""Consumers handle each event once, retry with backoff, dead-letter poison and flag disorder."""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime

import amqp
import pytest
from sqlalchemy import text

from shared.events import Envelope
from shared.messaging.broker import ConfirmingPublisher, close_quietly, connect
from shared.messaging.consumer import Subscription
from shared.messaging.dlq import list_dead_letters
from shared.messaging.topology import Topology
from shared.messaging.wire import envelope_from_message, envelope_message
from shared.processes import ManagedProcess
from shared.tests.messaging_support import (
    CrashProbed,
    PoisonProbed,
    commit_events,
    dockyard,
    log_probe,
    make_consumer,
    make_relay,
    metric,
    running,
    scalar,
    wait_until,
)
from shared.tests.probe_consumer import READY


def probe_envelope(routing_type: str, aggregate_id: str, sequence: int, n: int) -> Envelope:
    """An envelope as a relay would publish it, numbered by hand."""
    return Envelope(
        id=str(uuid.uuid4()),
        type=routing_type,
        version=1,
        source="auth",
        occurred_at=datetime.now(UTC).isoformat(),
        aggregate_type="hand-probe",
        aggregate_id=aggregate_id,
        sequence=sequence,
        correlation_id=None,
        payload={"probe_id": aggregate_id, "n": n},
    )


def publish(test_env, messages: list[tuple[str, str, amqp.Message]]) -> None:
    """Publish straight to the broker, confirmed."""
    connection = connect(test_env.amqp_url, name="test-publisher")
    try:
        Topology(test_env.namespace).declare_events(connection.channel())
        ConfirmingPublisher(connection).publish(messages)
    finally:
        close_quietly(connection)


def to_exchange(test_env, *envelopes: Envelope) -> list[tuple[str, str, amqp.Message]]:
    """Publish triples sending envelopes through the events exchange."""
    exchange = Topology(test_env.namespace).events_exchange
    return [(exchange, e.routing_key, envelope_message(e)) for e in envelopes]


def logged(engine, consumer: str) -> list[tuple[int, int]]:
    """(n, sequence) of what a consumer's handler committed, in commit order."""
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text("SELECT n, sequence FROM probe_log WHERE consumer = :c ORDER BY id"),
                {"c": consumer},
            )
        ]


def test_a_handler_that_keeps_failing_is_retried_dead_lettered_listed_and_replayed(
    test_env, auth_engine
):
    name = "test.poison"
    failing = {"on": True}

    def handler(envelope, session):
        log_probe(name, envelope, session)
        if failing["on"]:
            raise RuntimeError("cannot digest this")

    subscription = Subscription(
        name, ["auth.PoisonProbed"], handler, max_attempts=3, retry_delay=0.05
    )
    probe_id = uuid.uuid4().hex
    with running(make_consumer(test_env, auth_engine, subscription)):
        with running(make_relay(test_env, auth_engine, poll_interval=0.1)):
            commit_events(auth_engine, [PoisonProbed(probe_id=probe_id, n=7)])
            wait_until(
                lambda: metric("dockyard_consumer_dead_lettered_total", consumer=name) == 1,
                timeout=30,
                what="the message in the dead-letter queue",
            )
        assert metric("dockyard_consumer_retries_total", consumer=name) == 2
        assert logged(auth_engine, name) == []  # every failed attempt was rolled back

        listed = dockyard("dlq", "list", name)
        assert listed.returncode == 0, listed.stderr
        (line,) = listed.stdout.splitlines()
        assert "auth.PoisonProbed" in line
        assert "attempts=3" in line
        assert "RuntimeError: cannot digest this" in line
        as_json = json.loads(dockyard("dlq", "list", name, "--json").stdout)
        assert as_json["envelope"]["payload"] == {"probe_id": probe_id, "n": 7}

        failing["on"] = False
        replayed = dockyard("dlq", "replay", name)
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1 message(s)" in replayed.stdout
        wait_until(
            lambda: logged(auth_engine, name) == [(7, 1)],
            timeout=30,
            what="the replayed message to be handled",
        )
    assert "0 message(s) shown" in dockyard("dlq", "list", name).stderr


def test_dlq_commands_name_a_missing_queue(test_env):
    result = dockyard("dlq", "list", "test.never-ran")
    assert result.returncode == 1
    assert "test.never-ran.dlq" in result.stderr


def failing_on_four(name: str, calls: Counter[int]):
    """A handler that logs each event and counts its calls, and fails on event number 4."""

    def handle(envelope, session):
        calls[envelope.payload["n"]] += 1
        log_probe(name, envelope, session)
        if envelope.payload["n"] == 4:
            raise ValueError("four is right out")

    return handle


@pytest.mark.parametrize("batched", [False, True], ids=["per-event", "batched"])
def test_a_failing_event_of_a_batch_is_retried_and_dead_lettered_alone_the_others_commit_once(
    test_env, auth_engine, batched
):
    name = f"test.batch-failure-{'batched' if batched else 'per-event'}"
    calls: Counter[int] = Counter()

    handle = failing_on_four(name, calls)

    def handle_batch(envelopes, session):
        for envelope in envelopes:
            handle(envelope, session)

    envelopes = [probe_envelope("BatchProbed", "b1", n, n) for n in range(1, 11)]
    subscription = Subscription(
        name,
        ["auth.BatchProbed"],
        handle_batch if batched else handle,
        max_attempts=3,
        retry_delay=0.05,
        batched=batched,
    )
    with running(make_consumer(test_env, auth_engine, subscription)):
        publish(test_env, to_exchange(test_env, *envelopes))
        wait_until(
            lambda: metric("dockyard_consumer_dead_lettered_total", consumer=name) == 1,
            timeout=30,
            what="the failing event in the dead-letter queue",
        )
    assert [n for n, _ in logged(auth_engine, name)] == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    assert metric("dockyard_consumer_retries_total", consumer=name) == 2
    assert metric("dockyard_consumer_handled_total", consumer=name) == 9
    # Its three attempts; a batched handler first saw it in the batch, which counts for none.
    assert calls[4] == (4 if batched else 3)
    # An event is handled at most twice: in the batch that failed, then where it is committed.
    assert all(1 <= calls[n] <= 2 for n in (1, 2, 3, 5, 6, 7, 8, 9, 10)), calls
    queue = Topology(test_env.namespace).dead_letter_queue(name)
    (dead,) = list_dead_letters(test_env.amqp_url, queue)
    assert dead.message_id == envelopes[3].id
    assert dead.attempts == 3


def test_the_events_after_a_failing_one_run_once_and_those_before_it_at_most_twice(
    test_env, auth_engine
):
    name = "test.batch-split"
    calls: Counter[int] = Counter()

    handle = failing_on_four(name, calls)

    envelopes = [probe_envelope("SplitProbed", "s1", n, n) for n in range(1, 11)]
    subscription = Subscription(name, ["auth.SplitProbed"], handle, max_attempts=1)
    # Queued before the consumer starts, so they arrive together and form one batch.
    connection = connect(test_env.amqp_url, name="test-declare")
    try:
        Topology(test_env.namespace).declare_consumer(
            connection.channel(), name, bindings=subscription.bindings, retry_delays_ms=[]
        )
    finally:
        close_quietly(connection)
    publish(test_env, to_exchange(test_env, *envelopes))
    with running(make_consumer(test_env, auth_engine, subscription)):
        wait_until(
            lambda: (
                len(logged(auth_engine, name)) == 9
                and metric("dockyard_consumer_dead_lettered_total", consumer=name) == 1
            ),
            timeout=30,
            what="nine events handled and one dead-lettered",
        )
    assert [n for n, _ in logged(auth_engine, name)] == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    # Those before the failing one ran twice when they shared its batch, once when a slow start
    # delivered them in a batch of their own; the failing one and those after it ran once.
    assert all(calls[n] in (1, 2) for n in (1, 2, 3)), calls
    assert {n: calls[n] for n in range(4, 11)} == dict.fromkeys(range(4, 11), 1)


def test_a_message_that_is_not_an_envelope_is_dead_lettered_at_once(test_env, auth_engine):
    name = "test.malformed"
    topology = Topology(test_env.namespace)
    subscription = Subscription(name, ["auth.MalformedProbed"], lambda e, s: None)
    with running(make_consumer(test_env, auth_engine, subscription)):
        garbage = amqp.Message(b"{not json", delivery_mode=2, message_id="garbage-1")
        publish(test_env, [(topology.events_exchange, "auth.MalformedProbed", garbage)])
        wait_until(
            lambda: metric("dockyard_consumer_dead_lettered_total", consumer=name) == 1,
            timeout=30,
            what="the malformed message in the dead-letter queue",
        )
    listed = dockyard("dlq", "list", name)
    assert "garbage-1" in listed.stdout
    assert "malformed message" in listed.stdout


def test_a_redelivered_event_is_handled_once(test_env, auth_engine):
    name = "test.redelivered"
    envelope = probe_envelope("TwiceProbed", "t1", 1, 1)
    subscription = Subscription(name, ["auth.TwiceProbed"], lambda e, s: log_probe(name, e, s))
    with running(make_consumer(test_env, auth_engine, subscription)):
        publish(test_env, to_exchange(test_env, envelope, envelope))
        publish(test_env, to_exchange(test_env, envelope))
        wait_until(
            lambda: metric("dockyard_consumer_duplicates_total", consumer=name) == 2,
            timeout=30,
            what="two duplicates dropped",
        )
    assert logged(auth_engine, name) == [(1, 1)]


@pytest.mark.parametrize("skip_stale", [False, True], ids=["handled", "skipped"])
def test_an_older_sequence_than_applied_is_counted_noted_and_handled_unless_skipped(
    test_env, auth_engine, skip_stale
):
    name = f"test.stale-{'skip' if skip_stale else 'handle'}"
    aggregate = uuid.uuid4().hex[:12]
    subscription = Subscription(
        name, ["auth.StaleProbed"], lambda e, s: log_probe(name, e, s), skip_stale=skip_stale
    )
    newer, older = (probe_envelope("StaleProbed", aggregate, seq, seq) for seq in (2, 1))
    with running(make_consumer(test_env, auth_engine, subscription)):
        publish(test_env, to_exchange(test_env, newer))
        wait_until(lambda: logged(auth_engine, name), timeout=30, what="the newer event")
        publish(test_env, to_exchange(test_env, older))
        wait_until(
            lambda: metric("dockyard_consumer_out_of_order_total", consumer=name) == 1,
            timeout=30,
            what="the older event to be flagged",
        )
    expected = [(2, 2)] if skip_stale else [(2, 2), (1, 1)]
    assert logged(auth_engine, name) == expected
    with auth_engine.connect() as conn:
        last, note = conn.execute(
            text(
                "SELECT last_sequence, note FROM inbox_positions"
                " WHERE consumer = :c AND aggregate_id = :a"
            ),
            {"c": name, "a": aggregate},
        ).one()
    assert last == 2  # the position never moves back
    assert f"sequence 1 (event {older.id}) arrived after 2" in note
    assert scalar(auth_engine, "SELECT count(*) FROM inbox WHERE consumer = :c", c=name) == 2


def test_envelopes_survive_the_wire():
    envelope = probe_envelope("WireProbed", "w1", 3, 3)
    message = envelope_message(envelope)
    message.delivery_info = {"routing_key": envelope.routing_key}
    assert message.properties["delivery_mode"] == 2
    assert message.properties["message_id"] == envelope.id
    assert envelope_from_message(message) == envelope


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"\xff",
        b'{"id": "not-a-uuid"}',
        json.dumps({"id": "0b6d9a52-7c1e-4f3a-8d2b-5e4f6a7b8c9d"}).encode(),
    ],
)
def test_bodies_that_are_not_envelopes_are_rejected(body):
    with pytest.raises(ValueError):
        envelope_from_message(amqp.Message(body))


def test_retry_delays_double_up_to_the_cap():
    subscription = Subscription(
        "test.delays", ["a.B"], lambda e, s: None, max_attempts=6, retry_delay=1, max_retry_delay=5
    )
    assert subscription.retry_delays_ms() == [1000, 2000, 4000, 5000, 5000]


@pytest.mark.parametrize("name", ["", "Upper", "-leading", "has space"])
def test_subscription_names_must_be_queue_friendly(name):
    with pytest.raises(ValueError):
        Subscription(name, ["a.B"], lambda e, s: None)


def test_a_subscription_binds_something():
    with pytest.raises(ValueError):
        Subscription("test.nothing", [], lambda e, s: None)


def test_a_consumer_sigkilled_mid_batch_loses_nothing_and_applies_each_event_once(
    test_env, auth_engine, tmp_path
):
    name, total = "test.consumer-crash", 1500
    argv = [sys.executable, "-m", "shared.tests.probe_consumer", name, "auth.CrashProbed"]
    consumer = ManagedProcess("consumer", argv, env=dict(os.environ), log=tmp_path / "c.log")

    def handled(distinct: bool = False) -> int:
        count = "count(DISTINCT event_id)" if distinct else "count(*)"
        return scalar(auth_engine, f"SELECT {count} FROM probe_log WHERE consumer = :c", c=name)

    with running(make_relay(test_env, auth_engine, poll_interval=0.1)):
        with consumer:
            consumer.wait_ready(log_line=READY, timeout=30)
            events = [CrashProbed(probe_id=f"c{n % 7}", n=n) for n in range(total)]
            commit_events(auth_engine, events)
            wait_until(lambda: handled() >= 200, timeout=60, what="the consumer to be under way")
            consumer.kill()
        assert handled() < total, "the consumer finished before it could be killed"
        with consumer:
            wait_until(
                lambda: handled(distinct=True) == total, timeout=90, what="every event handled"
            )
    assert handled() == total  # each event's effect committed exactly once
    inbox = scalar(auth_engine, "SELECT count(*) FROM inbox WHERE consumer = :c", c=name)
    assert inbox == total


def test_a_consumer_that_loses_its_database_connection_reconnects_and_redelivers(
    test_env, auth_engine
):
    name = "test.consumer-reconnect"
    subscription = Subscription(name, ["auth.DbLossProbed"], lambda e, s: log_probe(name, e, s))
    consumer = make_consumer(test_env, auth_engine, subscription)
    with running(consumer):
        publish(test_env, to_exchange(test_env, probe_envelope("DbLossProbed", "d1", 1, 1)))
        wait_until(lambda: logged(auth_engine, name), timeout=30, what="the first event")
        backend = consumer._database.connection.dbapi_connection.get_backend_pid()
        assert scalar(auth_engine, "SELECT pg_terminate_backend(:pid)", pid=backend)
        publish(test_env, to_exchange(test_env, probe_envelope("DbLossProbed", "d1", 2, 2)))
        wait_until(
            lambda: len(logged(auth_engine, name)) == 2, timeout=30, what="an event after it"
        )
    assert logged(auth_engine, name) == [(1, 1), (2, 2)]
    assert metric("dockyard_consumer_retries_total", consumer=name) == 0


def test_a_broker_failure_read_during_a_handlers_database_wait_is_not_the_handlers(
    test_env, auth_engine
):
    """A cancel that arrives while a handler's statement runs ends in a reconnect, not a retry."""
    name = "test.cancel-mid-handler"
    topology = Topology(test_env.namespace)
    sleeping = threading.Event()

    def slow_probe(envelope: Envelope, session) -> None:
        if envelope.payload["n"] == 1:
            sleeping.set()
            session.execute(text("SELECT pg_sleep(1.5)"))
        log_probe(name, envelope, session)

    def queue_exists() -> bool:
        connection = connect(test_env.amqp_url, name="test-queue-check")
        try:
            connection.channel().queue_declare(topology.consumer_queue(name), passive=True)
            return True
        except amqp.exceptions.NotFound:
            return False
        finally:
            close_quietly(connection)

    subscription = Subscription(name, ["auth.CancelProbed"], slow_probe)
    with running(make_consumer(test_env, auth_engine, subscription)):
        publish(test_env, to_exchange(test_env, probe_envelope("CancelProbed", "c1", 1, 1)))
        assert sleeping.wait(30), "the handler did not start"
        connection = connect(test_env.amqp_url, name="test-queue-deleter")
        try:
            connection.channel().queue_delete(topology.consumer_queue(name))
        finally:
            close_quietly(connection)
        wait_until(lambda: logged(auth_engine, name), timeout=30, what="the slow event")
        wait_until(queue_exists, timeout=30, what="the consumer to declare its queue again")
        publish(test_env, to_exchange(test_env, probe_envelope("CancelProbed", "c1", 2, 2)))
        wait_until(
            lambda: len(logged(auth_engine, name)) == 2, timeout=30, what="an event after it"
        )
    assert logged(auth_engine, name) == [(1, 1), (2, 2)]
    assert metric("dockyard_consumer_retries_total", consumer=name) == 0
    assert metric("dockyard_consumer_dead_lettered_total", consumer=name) == 0
