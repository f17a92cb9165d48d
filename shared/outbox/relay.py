"""The outbox relay: publishes a service's outbox to RabbitMQ in commit order, then deletes it.

One batch is one PostgreSQL transaction:

1. `pg_try_advisory_xact_lock(<key of the schema>)`: only the relay holding the lock works; the
   others stand by and try again on their next poll. The lock is released when the transaction
   ends, also when the process is SIGKILLed (PostgreSQL ends the session and rolls it back).
2. Read the oldest `batch_size` rows in outbox id order.
3. Publish them all on a confirm-mode channel (persistent messages), then wait for the confirms
   of the whole batch together (`ConfirmingPublisher`).
4. Delete exactly those rows by id and commit, without waiting for the commit to reach the disk
   (synchronous_commit off for this transaction only): a delete that a database crash loses
   puts back rows that were already published, which is the at-least-once case below.

Any failure before the commit (nack, confirm timeout, lost connection, SIGKILL) leaves the rows
in place and the next batch, by this relay or another, publishes them again after a backoff
(0.5 s doubling to 15 s). A subscription's queue at its length bound nacks (reject-publish, see
topology): that is back-pressure, not loss; the outbox grows until the queue drains. Delivery is
at-least-once and consumers drop duplicates by event id. Rows are deleted, not flagged, so
published events do not bloat the table.

Why one leader rather than several relays sharing rows with `FOR UPDATE SKIP LOCKED`: two
relays holding two batches at once can publish one aggregate's events out of order (a later
batch confirmed before an earlier one). Under the lock a batch is published, confirmed and
deleted before the next batch is read, and a publisher confirm means the broker has enqueued
the message, so the broker receives each aggregate's events in outbox id order; the unit of
work numbers an aggregate's events while holding its sequence row lock, so that is also their
sequence and commit order (see shared.db.write_outbox_rows). Republished duplicates do not
break that order for the first copy of each event a consumer sees, because every batch starts
at the oldest row not yet deleted. Extra relays are hot standbys (the lock is per batch, so
leadership may move between them). One leader publishes thousands of events a second (see
bench/outbox_relay.py), more than one service commits; partitioning the outbox by aggregate
hash, one lock per partition, would scale further if it ever has to.

Latency: besides polling every `poll_interval`, the relay LISTENs on
`shared.db.outbox_channel(schema)`, which every unit of work that wrote events NOTIFYs on commit.

The relay also empties `<ns>.events.unroutable.tally` (copies of events no queue was bound
for) to count them in `dockyard_events_unroutable_total` and log them; the events themselves are
kept in `<ns>.events.unroutable` (see `dockyard dlq list --unroutable`). That queue is bounded
(topology.UNROUTABLE_MAX_LENGTH); the oldest events it drops once full arrive in
`<ns>.events.unroutable.dropped`, which the relay empties the same way into
`dockyard_events_unroutable_dropped_total`.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import amqp
from prometheus_client import REGISTRY, Counter, Histogram
from sqlalchemy import BigInteger, Table, Text, bindparam, delete, func
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from shared.db import outbox_channel
from shared.messaging.broker import (
    ConfirmingPublisher,
    close_quietly,
    connect,
    drain_available,
    wait_readable,
)
from shared.messaging.runtime import (
    Stopper,
    start_metrics_server,
    start_runtime,
)
from shared.messaging.topology import Topology
from shared.messaging.wire import stored_envelope_message
from shared.outbox.metrics import OutboxCollector
from shared.reconnect import Reconnects
from shared.registry import ServiceRegistry

log = logging.getLogger(__name__)

PUBLISHED = Counter(
    "dockyard_outbox_published_total", "Events published and confirmed by the broker", ["source"]
)
RELAY_ERRORS = Counter(
    "dockyard_outbox_relay_errors_total",
    "Relay failures (database, broker, nack, confirm timeout); it reconnects and retries",
    ["source"],
)
PUBLISH_DELAY = Histogram(
    "dockyard_outbox_publish_delay_seconds",
    "From an event's occurred_at (just before its commit) to the broker's confirm",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UNROUTABLE = Counter(
    "dockyard_events_unroutable_total",
    "Events that matched no queue and went to the alternate exchange",
    ["routing_key"],
)
UNROUTABLE_DROPPED = Counter(
    "dockyard_events_unroutable_dropped_total",
    "Unroutable events dropped from the full unroutable queue (no longer replayable)",
    ["routing_key"],
)

#: How often the unroutable tally queue is read.
TALLY_INTERVAL = 1.0
#: How long one wait blocks at most, so broker heartbeats are sent and read in time.
MAX_WAIT = 1.0


def relay_lock_key(schema: str) -> int:
    """The advisory lock key the relays of `schema` elect their leader with."""
    digest = hashlib.blake2b(f"dockyard.outbox.relay:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def row_message(row) -> tuple[str, amqp.Message]:
    """The routing key and message of one outbox row (selected as OutboxRelay reads them)."""
    fields = {
        "id": row.event_id,
        "type": row.event_type,
        "version": row.event_version,
        "source": row.source,
        "occurred_at": row.occurred_at.isoformat(),
        "aggregate_type": row.aggregate_type,
        "aggregate_id": row.aggregate_id,
        "sequence": row.sequence,
        "correlation_id": row.correlation_id,
    }
    return f"{row.source}.{row.event_type}", stored_envelope_message(fields, row.payload)


class OutboxRelay:
    """Publishes one schema's outbox to the events exchange; see the module docstring."""

    def __init__(
        self,
        *,
        engine: Engine,
        outbox: Table,
        amqp_url: str,
        namespace: str,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        confirm_timeout: float = 10.0,
        stopper: Stopper | None = None,
        topology: Topology | None = None,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.schema = outbox.schema or "public"
        self.amqp_url = amqp_url
        self.topology = topology or Topology(namespace)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.confirm_timeout = confirm_timeout
        self.stopper = stopper or Stopper()
        self.lock_key = relay_lock_key(self.schema)
        # The event id and payload come as text: the payload goes out as it is stored (see
        # wire.stored_envelope_message), never parsed into dicts and encoded again.
        columns = outbox.c
        self._read_batch = (
            sql_select(
                columns.id,
                columns.event_id.cast(Text).label("event_id"),
                columns.event_type,
                columns.event_version,
                columns.source,
                columns.occurred_at,
                columns.aggregate_type,
                columns.aggregate_id,
                columns.sequence,
                columns.correlation_id,
                columns.payload.cast(Text).label("payload"),
            )
            .order_by(columns.id)
            .limit(batch_size)
        )
        self._connection: amqp.Connection | None = None
        self._publisher: ConfirmingPublisher | None = None
        self._tally_channel: amqp.Channel | None = None
        self._listener = None
        self._database: Connection | None = None
        self._next_tally = 0.0
        self._reconnects = Reconnects("relay", log, extra={"schema": self.schema})

    def stop(self) -> None:
        """Finish the current batch, then make run() return."""
        self.stopper.stop()

    def run(self) -> None:
        """Relay until stopped, reconnecting to the database and broker after failures."""
        log.info(
            "relay started",
            extra={"schema": self.schema, "batch_size": self.batch_size, "pid": os.getpid()},
        )
        while not self.stopper.is_set():
            delay = None
            try:
                self._open()
                self._serve()
            # A full work queue (reject-publish) nacks (PublishError, an outage to Reconnects):
            # the rows stay unsent and go out once it drains.
            except Exception as exc:
                RELAY_ERRORS.labels(self.schema).inc()
                delay = self._reconnects.failed(exc)
            finally:
                self._close()
            if delay is not None:
                self.stopper.wait(delay)
        log.info("relay stopped", extra={"schema": self.schema})

    def _open(self) -> None:
        pooled = self.engine.raw_connection()
        # The listening connection lives as long as the relay: take it out of the pool.
        self._listener = pooled.driver_connection
        pooled.detach()
        self._listener.autocommit = True
        with self._listener.cursor() as cursor:
            cursor.execute(f'LISTEN "{outbox_channel(self.schema)}"')
        # One connection for every batch: checking one out of the pool would ping the server
        # first, a round trip per batch. Losing it makes run() reconnect.
        self._database = self.engine.connect()
        self._connection = connect(self.amqp_url, name=f"relay-{self.schema}-{os.getpid()}")
        setup = self._connection.channel()
        self.topology.declare_events(setup)
        self._tally_channel = setup
        self._publisher = ConfirmingPublisher(self._connection, timeout=self.confirm_timeout)

    def _close(self) -> None:
        close_quietly(self._connection)
        self._connection = self._publisher = self._tally_channel = None
        if self._database is not None:
            try:
                self._database.close()
            except SQLAlchemyError:
                pass
            self._database = None
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001 - it may already be broken
                pass
            self._listener = None

    def _serve(self) -> None:
        while not self.stopper.is_set():
            published = self.relay_batch()
            self._reconnects.succeeded()
            if time.monotonic() >= self._next_tally:
                self._tally_unroutable()
            if published is None:
                # Another relay leads: do not race it on every notification, just stand by.
                self._wait(self.poll_interval, wake_on_notify=False)
            elif published < self.batch_size:
                self._wait(self.poll_interval, wake_on_notify=True)

    def relay_batch(self) -> int | None:
        """Publish and delete one batch; None when another relay holds the lock."""
        assert self._publisher is not None and self._database is not None
        outbox, conn = self.outbox, self._database
        with conn.begin():
            # The delete need not wait for its WAL to reach the disk: if a crash loses it, the
            # rows are published again and consumers drop the copies (the inbox), in order.
            leader = conn.execute(
                sql_select(
                    func.pg_try_advisory_xact_lock(self.lock_key),
                    func.set_config("synchronous_commit", "off", True),
                )
            ).first()[0]
            if not leader:
                return None
            # A separate statement after the lock, so its snapshot sees the last leader's deletes.
            rows = conn.execute(self._read_batch).all()
            if not rows:
                return 0
            exchange = self.topology.events_exchange
            self._publisher.publish(
                (exchange, routing_key, message)
                for routing_key, message in (row_message(row) for row in rows)
            )
            # One array parameter: the statement's text is the same for every batch size.
            ids = bindparam("ids", [row.id for row in rows], type_=ARRAY(BigInteger))
            conn.execute(delete(outbox).where(outbox.c.id == func.any(ids)))
        now = datetime.now(UTC)
        PUBLISHED.labels(self.schema).inc(len(rows))
        delay = PUBLISH_DELAY.labels(self.schema)
        for row in rows:
            delay.observe((now - row.occurred_at).total_seconds())
        log.debug("published %d events", len(rows), extra={"last_outbox_id": rows[-1].id})
        return len(rows)

    def _tally_unroutable(self, limit: int = 1000) -> None:
        self._next_tally = time.monotonic() + TALLY_INTERVAL
        # no_ack: these are copies for counting; the event itself stays in the unroutable queue.
        for routing_key, event_id in self._take(self.topology.unroutable_tally_queue, limit):
            UNROUTABLE.labels(routing_key).inc()
            log.warning(
                "unroutable event: no queue is bound for %s",
                routing_key,
                extra={"routing_key": routing_key, "event_id": event_id},
            )
        for routing_key, event_id in self._take(self.topology.unroutable_dropped_queue, limit):
            UNROUTABLE_DROPPED.labels(routing_key).inc()
            log.error(
                "unroutable event dropped: the unroutable queue is full (%d events)",
                self.topology.unroutable_max_length,
                extra={"routing_key": routing_key, "event_id": event_id},
            )

    def _take(self, queue: str, limit: int) -> Iterator[tuple[str, str | None]]:
        """Remove up to `limit` messages of `queue`: their routing keys and event ids."""
        assert self._tally_channel is not None
        for _ in range(limit):
            message = self._tally_channel.basic_get(queue, no_ack=True)
            if message is None:
                return
            yield message.delivery_info.get("routing_key", ""), message.properties.get("message_id")

    def _wait(self, timeout: float, *, wake_on_notify: bool) -> None:
        """Wait for a NOTIFY (if `wake_on_notify`), stop() or `timeout`, serving heartbeats."""
        assert self._connection is not None and self._listener is not None
        driver = self._listener
        broker_fd = self._connection.sock.fileno()
        deadline = time.monotonic() + timeout
        while not self.stopper.is_set():
            self._connection.heartbeat_tick()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable = wait_readable(
                self._connection,
                min(remaining, MAX_WAIT),
                extra=[driver.fileno(), self.stopper.fileno()],
            )
            if broker_fd in readable:
                drain_available(self._connection)
            if driver.fileno() in readable:
                driver.poll()
                notified = bool(driver.notifies)
                driver.notifies.clear()
                if notified and wake_on_notify:
                    return


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `dockyard relay`."""
    parser = argparse.ArgumentParser(
        prog="dockyard relay", description="Publish a service's outbox to RabbitMQ."
    )
    parser.add_argument("service", help="service whose outbox to publish, e.g. auth")
    parser.add_argument("--batch-size", type=int, default=1000, help="rows per transaction")
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between polls without NOTIFY"
    )
    parser.add_argument(
        "--confirm-timeout", type=float, default=10.0, help="seconds to wait for confirms"
    )
    parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics here")
    return parser


def main(argv: list[str] | None, *, registry: ServiceRegistry) -> int:
    """`dockyard relay <service>`: run the service's outbox relay until SIGTERM or SIGINT."""
    args = build_parser().parse_args(argv)
    runtime = start_runtime(registry, args.service, "relay")
    outbox = runtime.service.tables.outbox
    REGISTRY.register(OutboxCollector(runtime.engine, outbox, source=runtime.service.name))
    start_metrics_server(args.metrics_port)
    relay = OutboxRelay(
        engine=runtime.engine,
        outbox=outbox,
        amqp_url=runtime.settings.AMQP_URL,
        namespace=runtime.settings.NAMESPACE,
        batch_size=args.batch_size,
        poll_interval=args.poll_interval,
        confirm_timeout=args.confirm_timeout,
        stopper=runtime.stopper,
    )
    relay.run()
    runtime.engine.dispose()
    return 0
