"""The gateway's event listener against the real RabbitMQ: routing, reconnection, resync."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

from services.gateway.feed import EventFeed, EventListener
from shared.events import Envelope
from shared.messaging.broker import ConfirmingPublisher, connect
from shared.messaging.topology import Topology
from shared.messaging.wire import envelope_message

WAIT = 10


def publish(namespace: str, *envelopes: Envelope) -> None:
    """Publish envelopes to the run's events exchange, as a relay does."""
    topology = Topology(namespace)
    connection = connect(os.environ["AMQP_URL"], name="test-publisher")
    try:
        publisher = ConfirmingPublisher(connection)
        topology.declare_events(publisher.channel)
        publisher.publish(
            (topology.events_exchange, e.routing_key, envelope_message(e)) for e in envelopes
        )
    finally:
        connection.close()


def envelope(source: str, type_: str, aggregate_type: str, aggregate_id: str) -> Envelope:
    """An event of `source` about one aggregate."""
    return Envelope(
        id=str(uuid.uuid4()),
        type=type_,
        version=1,
        source=source,
        occurred_at="2026-11-22T05:00:00+00:00",
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        sequence=1,
        correlation_id=None,
    )


async def _connected(listener: EventListener) -> None:
    assert await asyncio.to_thread(listener.connected.wait, WAIT), "listener did not connect"


def test_file_and_task_events_reach_their_watches_and_others_do_not(test_env):
    file_id, task_id, user_id = (str(uuid.uuid4()) for _ in range(3))

    async def scenario() -> tuple[bool, bool, bool]:
        feed = EventFeed()
        listener = EventListener(feed, amqp_url=test_env.amqp_url, namespace=test_env.namespace)
        listener.start(asyncio.get_running_loop())
        try:
            await _connected(listener)
            file_watch, task_watch = feed.watch("file", file_id), feed.watch("task", task_id)
            user_watch = feed.watch("user", user_id)
            # The resync of the connection may already be queued; start from a clean slate.
            await asyncio.sleep(0.1)
            for watch in (file_watch, task_watch, user_watch):
                await watch.changed(timeout=0.01)
            await asyncio.to_thread(
                publish,
                test_env.namespace,
                envelope("files", "FileProcessed", "file", file_id),
                envelope("tasks", "TaskStarted", "task", task_id),
                envelope("auth", "UserDeleted", "user", user_id),
            )
            return (
                await file_watch.changed(timeout=WAIT),
                await task_watch.changed(timeout=WAIT),
                await user_watch.changed(timeout=0.5),
            )
        finally:
            await asyncio.to_thread(listener.stop)

    assert asyncio.run(scenario()) == (True, True, False)


def test_a_dropped_connection_is_reopened_and_every_watch_reads_again(test_env):
    file_id = str(uuid.uuid4())

    async def scenario() -> tuple[bool, bool]:
        feed = EventFeed()
        listener = EventListener(feed, amqp_url=test_env.amqp_url, namespace=test_env.namespace)
        listener.start(asyncio.get_running_loop())
        try:
            await _connected(listener)
            watch = feed.watch("file", file_id)
            await asyncio.sleep(0.1)
            await watch.changed(timeout=0.01)

            # What a broker restart or a network cut looks like from the listener's side.
            listener._connection.sock.shutdown(socket.SHUT_RDWR)
            resynced = await watch.changed(timeout=WAIT)
            await _connected(listener)
            await asyncio.to_thread(
                publish, test_env.namespace, envelope("files", "FileDeleted", "file", file_id)
            )
            return resynced, await watch.changed(timeout=WAIT)
        finally:
            await asyncio.to_thread(listener.stop)

    assert asyncio.run(scenario()) == (True, True)
