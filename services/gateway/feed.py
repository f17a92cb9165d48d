"""Live updates: one RabbitMQ listener per gateway process feeding the subscriptions' watches.

The listener is a daemon thread consuming `files.*` and `tasks.*` from `<ns>.events` on an
exclusive, auto-deleted queue of its own (every gateway process sees every event; nothing is
shared, nothing outlives the process). It hands each envelope to the event loop, where the
EventFeed notifies the watches of that aggregate.

Events are triggers, not state: a watch only learns that its file or task changed, and its
subscription reads the object again from the owning service with the subscriber's own token.
So the services' authorisation applies to every update, a lost or duplicated event costs at
most a read, and whenever the listener (re)connects every watch is notified, because events
published while no queue was bound are gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections.abc import Iterable

import amqp

from shared.events import Envelope
from shared.messaging.broker import close_quietly, connect, drain_available, wait_readable
from shared.messaging.runtime import Stopper
from shared.messaging.topology import Topology
from shared.messaging.wire import envelope_from_message
from shared.reconnect import Reconnects

log = logging.getLogger("dockyard.gateway.feed")

#: The events whose aggregates can be watched.
BINDINGS = ("files.*", "tasks.*")
#: Longest wait for the broker before heartbeats are looked after again.
MAX_WAIT = 1.0

Key = tuple[str, str]


class Watch:
    """What one subscription waits on: notified whenever an event names its aggregate."""

    def __init__(self, feed: EventFeed, key: Key, ignore: frozenset[str] = frozenset()) -> None:
        self.key = key
        #: Event types that do not concern this watch (e.g. output batches for a status watch).
        self.ignore = ignore
        self._feed = feed
        self._changed = asyncio.Event()

    def notify(self, event_type: str | None = None) -> None:
        """Mark the aggregate as changed (on the event loop); None: something may have changed."""
        if event_type is None or event_type not in self.ignore:
            self._changed.set()

    async def changed(self, timeout: float | None = None) -> bool:
        """Wait until the aggregate changed since the last call; False when `timeout` passed."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    def close(self) -> None:
        """Stop watching."""
        self._feed.forget(self)


class EventFeed:
    """The watches of one process by aggregate; used on the event loop only."""

    def __init__(self) -> None:
        self._watches: dict[Key, set[Watch]] = {}

    def watch(
        self, aggregate_type: str, aggregate_id: str, *, ignore: frozenset[str] = frozenset()
    ) -> Watch:
        """Start watching one aggregate (`file` or `task` and its id), but not `ignore`d events."""
        key = (aggregate_type, aggregate_id)
        watch = Watch(self, key, ignore)
        self._watches.setdefault(key, set()).add(watch)
        return watch

    def forget(self, watch: Watch) -> None:
        """Stop notifying `watch`."""
        watches = self._watches.get(watch.key)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.key]

    def deliver(self, envelope: Envelope) -> None:
        """Notify the watches of the envelope's aggregate."""
        key = (envelope.aggregate_type, envelope.aggregate_id)
        for watch in self._watches.get(key, ()):
            watch.notify(envelope.type)

    def resync(self) -> None:
        """Notify every watch: events may have been missed."""
        for watches in self._watches.values():
            for watch in watches:
                watch.notify()

    def __len__(self) -> int:
        """How many aggregates are watched."""
        return len(self._watches)


class EventListener:
    """A thread consuming the services' events into an EventFeed; reconnects with backoff."""

    def __init__(
        self,
        feed: EventFeed,
        *,
        amqp_url: str,
        namespace: str,
        bindings: Iterable[str] = BINDINGS,
    ) -> None:
        self.feed = feed
        self.amqp_url = amqp_url
        self.topology = Topology(namespace)
        self.bindings = tuple(bindings)
        #: Set while a queue is bound and consumed (tests wait for it).
        self.connected = threading.Event()
        self._stopper = Stopper()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connection: amqp.Connection | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start consuming; events are handed to `loop`."""
        self._loop = loop
        self._thread = threading.Thread(target=self.run, name="gateway-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop consuming and wait for the thread."""
        self._stopper.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self._stopper.close()

    def run(self) -> None:
        """Consume until stopped; after a failure reconnect (shared.reconnect's backoff)."""
        reconnects = Reconnects("event listener", log)
        while not self._stopper.is_set():
            delay = 0.0
            try:
                self._open()
                reconnects.succeeded()
                self._serve()
            except Exception as exc:  # noqa: BLE001 - any broker failure means: reconnect
                delay = reconnects.failed(exc)
            finally:
                self.connected.clear()
                close_quietly(self._connection)
                self._connection = None
            if not self._stopper.is_set():
                self._stopper.wait(delay)

    def _open(self) -> None:
        self._connection = connection = connect(self.amqp_url, name=f"gateway-{os.getpid()}")
        channel = connection.channel()
        self.topology.declare_events(channel)
        # A new name per connection: the previous queue may linger until the broker notices
        # that its connection died, and exclusive queues cannot be taken over.
        queue = f"{self.topology.namespace}.gateway.{uuid.uuid4().hex}"
        channel.queue_declare(queue, durable=False, exclusive=True, auto_delete=True)
        for routing_key in self.bindings:
            channel.queue_bind(queue, self.topology.events_exchange, routing_key)
        channel.basic_consume(queue, callback=self._received, no_ack=True)
        self.connected.set()
        log.info("event listener consuming", extra={"queue": queue})
        self._hand_over(self.feed.resync)

    def _serve(self) -> None:
        connection = self._connection
        assert connection is not None
        while not self._stopper.is_set():
            readable = wait_readable(connection, MAX_WAIT, extra=[self._stopper.fileno()])
            connection.heartbeat_tick()
            if readable and not self._stopper.is_set():
                drain_available(connection)

    def _received(self, message: amqp.Message) -> None:
        try:
            envelope = envelope_from_message(message)
        except ValueError as exc:
            log.warning("ignoring a malformed event: %s", exc)
            return
        self._hand_over(self.feed.deliver, envelope)

    def _hand_over(self, callback, *args) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            # The loop closed under us: the process is shutting down.
            self._stopper.stop()
