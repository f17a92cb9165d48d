"""The relay publishes every committed event at least once, in order, whatever kills it."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import uuid

from shared.messaging.broker import close_quietly, connect
from shared.messaging.consumer import Subscription
from shared.messaging.dlq import list_dead_letters
from shared.messaging.topology import Topology
from shared.processes import ManagedProcess, stop_all
from shared.tests.messaging_support import (
    NobodyListensProbed,
    OrderProbed,
    ReconnectProbed,
    RelayProbed,
    commit_events,
    dockyard,
    log_probe,
    make_consumer,
    make_relay,
    metric,
    relay_process,
    running,
    scalar,
    scrape,
    wait_until,
)

OUTBOX_EMPTY = "SELECT count(*) FROM outbox"


def test_relay_sigkilled_mid_batch_loses_nothing_and_the_inbox_drops_the_duplicates(
    test_env, auth_engine, tmp_path
):
    total, first = 2000, 600
    name = "test.relay-crash"
    relay: ManagedProcess | None = None
    trigger = {"armed": threading.Event(), "stopped": threading.Event(), "event_id": None}

    def handler(envelope, session):
        log_probe(name, envelope, session)
        # Freeze the relay as soon as a message of the big batch arrives: it is then still
        # publishing the batch or waiting for its confirms, and has deleted none of it.
        if trigger["armed"].is_set():
            trigger["armed"].clear()
            os.kill(relay.pid, signal.SIGSTOP)
            trigger["event_id"] = envelope.id
            trigger["stopped"].set()

    def logged(distinct: bool = False) -> int:
        count = "count(DISTINCT event_id)" if distinct else "count(*)"
        return scalar(auth_engine, f"SELECT {count} FROM probe_log WHERE consumer = :c", c=name)

    events = [RelayProbed(probe_id=f"p{n % 50}", n=n) for n in range(total)]
    subscription = Subscription(name, ["auth.RelayProbed"], handler)
    relay_args = ("--batch-size", "1000", "--poll-interval", "0.2")
    in_flight = "SELECT count(*) FROM outbox WHERE event_id = CAST(:id AS uuid)"
    log = tmp_path / "relay.log"
    with running(make_consumer(test_env, auth_engine, subscription)):
        relay = relay_process(log, *relay_args)
        with relay:
            # Some batches go through completely (published, confirmed, deleted) first.
            commit_events(auth_engine, events[:first])
            wait_until(lambda: logged() == first, timeout=30, what="the first events")
            wait_until(lambda: scalar(auth_engine, OUTBOX_EMPTY) == 0, timeout=30, what="deletes")
            trigger["armed"].set()
            commit_events(auth_engine, events[first:], per_transaction=total)
            killed_mid_batch = False
            for _attempt in range(3):
                assert trigger["stopped"].wait(30), relay.logs()
                if scalar(auth_engine, in_flight, id=trigger["event_id"]):
                    relay.kill()
                    # Still there once PostgreSQL rolled the dead relay's transaction back.
                    killed_mid_batch = bool(scalar(auth_engine, in_flight, id=trigger["event_id"]))
                    break
                trigger["stopped"].clear()
                trigger["armed"].set()
                os.kill(relay.pid, signal.SIGCONT)
        assert killed_mid_batch, "never caught the relay between publishing and deleting"
        assert scalar(auth_engine, OUTBOX_EMPTY) > 0

        with relay_process(log, *relay_args) as relay:
            wait_until(
                lambda: scalar(auth_engine, OUTBOX_EMPTY) == 0, timeout=60, what="an empty outbox"
            )
            wait_until(lambda: logged(distinct=True) == total, timeout=60, what="every event")
            wait_until(
                lambda: metric("dockyard_consumer_duplicates_total", consumer=name) >= 1,
                timeout=30,
                what="the republished events to be dropped as duplicates",
            )
            assert relay.stop() == 0, relay.logs()

    assert logged() == total  # each event's effect was written exactly once
    assert scalar(auth_engine, "SELECT count(*) FROM inbox WHERE consumer = :c", c=name) == total


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_relays_at_once_keep_each_aggregates_events_in_sequence_order(
    test_env, auth_engine, tmp_path
):
    name = "test.order"
    aggregates, threads = 12, 4
    seen: dict[str, list[int]] = {f"o{i}": [] for i in range(aggregates)}
    committed = [0] * threads
    producing = threading.Event()

    def handler(envelope, session):
        seen[envelope.aggregate_id].append(envelope.sequence)

    def produce(thread: int) -> None:
        # One to three events of different aggregates a transaction, from several threads at
        # once: each aggregate's events end up spread over many small batches.
        n = thread
        while producing.is_set():
            events = [
                OrderProbed(probe_id=f"o{(n + k) % aggregates}", n=n) for k in range(1 + n % 3)
            ]
            commit_events(auth_engine, events)
            committed[thread] += len(events)
            n += threads

    def published(port: int) -> float:
        try:
            return scrape(port, "dockyard_outbox_published_total")
        except OSError:  # not serving yet
            return 0

    consumer = make_consumer(
        test_env, auth_engine, Subscription(name, ["auth.OrderProbed"], handler)
    )
    ports = [_free_port(), _free_port()]
    with running(consumer):
        relays = [
            relay_process(
                tmp_path / f"relay{i}.log",
                *("--batch-size", "7", "--poll-interval", "0.05", "--metrics-port", str(port)),
            ).start()
            for i, port in enumerate(ports)
        ]
        producers = [threading.Thread(target=produce, args=(i,)) for i in range(threads)]
        producing.set()
        try:
            for producer in producers:
                producer.start()
            wait_until(
                lambda: sum(committed) >= 1000 and all(published(port) >= 50 for port in ports),
                timeout=60,
                what="both relays to publish a share of 1000 events",
            )
        finally:
            producing.clear()
            for producer in producers:
                producer.join()
        try:
            wait_until(
                lambda: sum(len(v) for v in seen.values()) >= sum(committed),
                timeout=60,
                what=f"{sum(committed)} events at the consumer",
            )
        finally:
            stop_all(relays)

    for aggregate, sequences in seen.items():
        assert sequences == list(range(1, len(sequences) + 1)), aggregate
    assert metric("dockyard_consumer_out_of_order_total", consumer=name) == 0


def test_unroutable_events_are_kept_counted_and_can_be_replayed_once_someone_listens(
    test_env, auth_engine
):
    probe_id = uuid.uuid4().hex
    routing_key = "auth.NobodyListensProbed"
    topology = Topology(test_env.namespace)
    with running(make_relay(test_env, auth_engine, poll_interval=0.1)):
        commit_events(auth_engine, [NobodyListensProbed(probe_id=probe_id, n=1)])
        wait_until(
            lambda: metric("dockyard_events_unroutable_total", routing_key=routing_key) >= 1,
            timeout=30,
            what="the unroutable event to be counted",
        )
        kept = [
            letter
            for letter in list_dead_letters(
                test_env.amqp_url, topology.unroutable_queue, limit=10_000
            )
            if letter.routing_key == routing_key and probe_id in letter.body
        ]
        assert len(kept) == 1

        name = "test.late-listener"
        consumer = make_consumer(
            test_env,
            auth_engine,
            Subscription(name, [routing_key], lambda e, s: log_probe(name, e, s)),
        )
        with running(consumer):
            replayed = dockyard("dlq", "replay", "--unroutable")
            assert replayed.returncode == 0, replayed.stderr
            wait_until(
                lambda: (
                    scalar(
                        auth_engine,
                        "SELECT count(*) FROM probe_log WHERE consumer = :c AND aggregate_id = :a",
                        c=name,
                        a=probe_id,
                    )
                    == 1
                ),
                timeout=30,
                what="the replayed event at its new subscriber",
            )


def test_the_relay_reconnects_after_losing_its_database_connections(test_env, auth_engine):
    name = "test.reconnect"
    subscription = Subscription(name, ["auth.ReconnectProbed"], lambda e, s: log_probe(name, e, s))

    def handled() -> int:
        return scalar(auth_engine, "SELECT count(*) FROM probe_log WHERE consumer = :c", c=name)

    errors_before = metric("dockyard_outbox_relay_errors_total", source="auth")
    with running(make_consumer(test_env, auth_engine, subscription)):
        with running(make_relay(test_env, auth_engine, poll_interval=0.1)):
            commit_events(auth_engine, [ReconnectProbed(probe_id="r", n=1)])
            wait_until(lambda: handled() == 1, timeout=30, what="the first event")
            terminated = scalar(
                auth_engine,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            assert terminated == 1
            commit_events(auth_engine, [ReconnectProbed(probe_id="r", n=2)])
            wait_until(lambda: handled() == 2, timeout=30, what="an event after the reconnect")
    assert metric("dockyard_outbox_relay_errors_total", source="auth") == errors_before + 1


def test_the_relay_reconnects_after_losing_the_connection_it_publishes_batches_on(
    test_env, auth_engine
):
    name = "test.reconnect-batches"
    subscription = Subscription(name, ["auth.ReconnectProbed"], lambda e, s: log_probe(name, e, s))

    def handled() -> int:
        return scalar(auth_engine, "SELECT count(*) FROM probe_log WHERE consumer = :c", c=name)

    errors_before = metric("dockyard_outbox_relay_errors_total", source="auth")
    with running(make_consumer(test_env, auth_engine, subscription)):
        relay = make_relay(test_env, auth_engine, poll_interval=0.1)
        with running(relay):
            commit_events(auth_engine, [ReconnectProbed(probe_id="b", n=1)])
            wait_until(lambda: handled() == 1, timeout=30, what="the first event")
            backend = relay._database.connection.dbapi_connection.get_backend_pid()
            assert scalar(auth_engine, "SELECT pg_terminate_backend(:pid)", pid=backend)
            commit_events(auth_engine, [ReconnectProbed(probe_id="b", n=2)])
            wait_until(lambda: handled() == 2, timeout=30, what="an event after the reconnect")
    assert metric("dockyard_outbox_relay_errors_total", source="auth") == errors_before + 1


def test_a_full_unroutable_queue_drops_its_oldest_events_and_the_relay_counts_each_drop(
    test_env, auth_engine
):
    # A namespace of its own: the run's unroutable queue is declared with the real bound.
    topology = Topology(f"{test_env.namespace}.bounded", unroutable_max_length=3)
    probe_id = uuid.uuid4().hex
    routing_key = "auth.NobodyListensProbed"
    dropped_before = metric("dockyard_events_unroutable_dropped_total", routing_key=routing_key)
    relay = make_relay(test_env, auth_engine, poll_interval=0.1, topology=topology)
    with running(relay):
        commit_events(auth_engine, [NobodyListensProbed(probe_id=probe_id, n=n) for n in range(5)])
        wait_until(
            lambda: (
                metric("dockyard_events_unroutable_dropped_total", routing_key=routing_key)
                - dropped_before
                == 2
            ),
            timeout=30,
            what="the two oldest unroutable events to be dropped and counted",
        )
    kept = [
        json.loads(letter.body)["payload"]["n"]
        for letter in list_dead_letters(test_env.amqp_url, topology.unroutable_queue, limit=100)
        if probe_id in letter.body
    ]
    assert kept == [2, 3, 4]


def test_an_unroutable_queue_declared_without_a_bound_does_not_stop_the_declarations(test_env):
    topology = Topology(f"{test_env.namespace}.unbounded")
    connection = connect(test_env.amqp_url, name="test-unbounded")
    try:
        channel = connection.channel()
        channel.queue_declare(topology.unroutable_queue, durable=True, auto_delete=False)
        topology.declare_events(channel)
        topology.declare_consumer(channel, "test.after-unbounded", bindings=[], retry_delays_ms=[])
        _name, count, _consumers = channel.queue_declare(
            topology.consumer_queue("test.after-unbounded"), passive=True
        )
        assert count == 0
    finally:
        close_quietly(connection)


def test_a_relayed_message_carries_the_envelope_the_outbox_row_describes(test_env, auth_engine):
    from sqlalchemy import select

    from services.auth.models import messaging_tables
    from shared.events import Envelope
    from shared.messaging.wire import envelope_from_message
    from shared.outbox.relay import row_message

    probe = str(uuid.uuid4())
    commit_events(auth_engine, [OrderProbed(probe_id=probe, n=7)])
    outbox = messaging_tables.outbox
    relay = make_relay(test_env, auth_engine)
    with auth_engine.connect() as conn:
        stored = conn.execute(select(outbox).where(outbox.c.aggregate_id == probe)).one()
        relayed = [r for r in conn.execute(relay._read_batch) if r.aggregate_id == probe]
    routing_key, message = row_message(relayed[0])
    expected = Envelope(
        id=str(stored.event_id),
        type=stored.event_type,
        version=stored.event_version,
        source=stored.source,
        occurred_at=stored.occurred_at.isoformat(),
        aggregate_type=stored.aggregate_type,
        aggregate_id=stored.aggregate_id,
        sequence=stored.sequence,
        correlation_id=stored.correlation_id,
        payload=stored.payload,
    )
    assert envelope_from_message(message) == expected
    assert list(json.loads(message.body)) == list(expected.to_dict())
    assert routing_key == expected.routing_key == "auth.OrderProbed"
    assert message.properties["message_id"] == expected.id
    assert message.properties["delivery_mode"] == 2
