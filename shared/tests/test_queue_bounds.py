"""A subscription queue at its bound refuses publishes; the relay keeps and retries them."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import amqp
import pytest

from shared.events import Event
from shared.messaging.broker import ConfirmingPublisher, PublishError, close_quietly, connect
from shared.messaging.consumer import Subscription
from shared.messaging.topology import Topology
from shared.outbox.relay import RELAY_ERRORS
from shared.tests.messaging_support import (
    commit_events,
    log_probe,
    make_consumer,
    make_relay,
    running,
    scalar,
    wait_until,
)


@dataclass(frozen=True)
class BoundProbed(Event):
    """Probe event of the queue bound tests (only their queue is bound to it)."""

    aggregate_type = "bound-probe"
    aggregate_field = "probe_id"

    probe_id: str
    n: int


def _depth(amqp_url: str, queue: str) -> int:
    connection = connect(amqp_url, name="test-queue-depth")
    try:
        _name, count, _consumers = connection.channel().queue_declare(queue, passive=True)
        return count
    finally:
        close_quietly(connection)


def _delete(amqp_url: str, *queues: str) -> None:
    connection = connect(amqp_url, name="test-queue-cleanup")
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
    finally:
        close_quietly(connection)


def test_a_full_queue_nacks_a_publish_rather_than_dropping_a_message(test_env):
    topology = Topology(f"{test_env.namespace}.bounded", consumer_max_length=2)
    connection = connect(test_env.amqp_url, name="test-bounded-nack")
    queue = topology.consumer_queue("test.bounded-nack")
    try:
        channel = connection.channel()
        topology.declare_consumer(channel, "test.bounded-nack", bindings=["k"], retry_delays_ms=[])
        publisher = ConfirmingPublisher(connection)
        exchange = topology.events_exchange
        assert publisher.publish((exchange, "k", amqp.Message(f"m{n}")) for n in range(2)) == 2
        with pytest.raises(PublishError, match="nacked 1 of 1"):
            publisher.publish([(exchange, "k", amqp.Message("m2"))])
        kept = [channel.basic_get(queue, no_ack=True).body for _ in range(2)]
        assert kept == ["m0", "m1"]  # the oldest are kept: nothing was dropped to make room
    finally:
        close_quietly(connection)
        _delete(test_env.amqp_url, queue)


def test_the_relay_keeps_refused_events_in_its_outbox_and_delivers_them_once_the_queue_drains(
    test_env, auth_engine
):
    name, limit, total = f"test.bound-{uuid.uuid4().hex[:8]}", 3, 8
    probe = uuid.uuid4().hex
    topology = Topology(test_env.namespace, consumer_max_length=limit)
    queue = topology.consumer_queue(name)
    connection = connect(test_env.amqp_url, name="test-bounded-relay")
    try:
        topology.declare_consumer(
            connection.channel(), name, bindings=["auth.BoundProbed"], retry_delays_ms=[]
        )
    finally:
        close_quietly(connection)
    ours = "SELECT count(*) FROM outbox WHERE aggregate_id = :p"
    logged = "SELECT count(DISTINCT event_id) FROM probe_log WHERE consumer = :c"
    errors_before = RELAY_ERRORS.labels("auth")._value.get()
    try:
        with running(make_relay(test_env, auth_engine, poll_interval=0.1)):
            commit_events(auth_engine, [BoundProbed(probe_id=probe, n=n) for n in range(total)])
            wait_until(
                lambda: RELAY_ERRORS.labels("auth")._value.get() >= errors_before + 2,
                timeout=60,
                what="the relay to be refused twice",
            )
            assert _depth(test_env.amqp_url, queue) == limit
            assert scalar(auth_engine, ours, p=probe) == total  # nothing marked sent

            subscription = Subscription(
                name, ["auth.BoundProbed"], lambda e, s: log_probe(name, e, s)
            )
            consumer = make_consumer(test_env, auth_engine, subscription, queue_max_length=limit)
            with running(consumer):
                wait_until(
                    lambda: scalar(auth_engine, logged, c=name) == total,
                    timeout=90,
                    what="every refused event to arrive once the queue drained",
                )
                wait_until(
                    lambda: scalar(auth_engine, ours, p=probe) == 0,
                    timeout=60,
                    what="the relay to delete the events it finally published",
                )
        rows = "SELECT count(*) FROM probe_log WHERE consumer = :c"
        assert scalar(auth_engine, rows, c=name) == total  # republished copies were dropped
    finally:
        _delete(test_env.amqp_url, queue, topology.dead_letter_queue(name))


def test_a_work_queue_declared_with_other_bounds_keeps_them_with_a_warning(test_env, caplog):
    topology = Topology(f"{test_env.namespace}.rebound", consumer_max_length=5)
    queue = topology.consumer_queue("test.older")
    connection = connect(test_env.amqp_url, name="test-older-queue")
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, auto_delete=False)  # as an older release did
        with caplog.at_level(logging.WARNING, logger="shared.messaging.topology"):
            topology.declare_consumer(channel, "test.older", bindings=["k"], retry_delays_ms=[])
        assert "declared with other length arguments" in caplog.text
        # The caller's channel survived, and the queue still takes publishes.
        ConfirmingPublisher(connection).publish(
            (topology.events_exchange, "k", amqp.Message(str(n))) for n in range(8)
        )
        assert channel.queue_declare(queue, passive=True)[1] == 8
    finally:
        close_quietly(connection)
        _delete(test_env.amqp_url, queue, topology.dead_letter_queue("test.older"))


def test_a_replay_into_a_full_queue_leaves_the_dead_letters_where_they_are(test_env, capsys):
    from shared.messaging import dlq

    name = f"test.full-replay-{uuid.uuid4().hex[:8]}"
    topology = Topology(test_env.namespace, consumer_max_length=1)
    queue, dead = topology.consumer_queue(name), topology.dead_letter_queue(name)
    connection = connect(test_env.amqp_url, name="test-full-replay")
    try:
        channel = connection.channel()
        topology.declare_consumer(channel, name, bindings=[], retry_delays_ms=[])
        ConfirmingPublisher(connection).publish(
            [("", queue, amqp.Message("waiting")), ("", dead, amqp.Message("d1"))]
            + [("", dead, amqp.Message("d2"))]
        )
        assert dlq.main(["replay", name]) == 1
        assert "refused a replay" in capsys.readouterr().err
        assert channel.queue_declare(dead, passive=True)[1] == 2
        assert channel.queue_declare(queue, passive=True)[1] == 1
    finally:
        close_quietly(connection)
        _delete(test_env.amqp_url, queue, dead)
