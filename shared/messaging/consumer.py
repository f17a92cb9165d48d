"""Idempotent event consumers on py-amqp: inbox dedupe, sequence checks, retries, dead letters.

A subscription is a consumer name, the routing keys its queue binds and a handler, listed in
`services/<name>/handlers.py`; `dockyard consume <name>` (shared.messaging.consume) runs them on
that service's schema:

    def on_tokens_revoked(envelope: Envelope, session: Session) -> None:
        ...

    SUBSCRIPTIONS = [
        Subscription("files.tokens-revoked", ["auth.TokensRevoked"], on_tokens_revoked),
    ]

Processing, per subscription and in delivery order:

* The messages already delivered are taken in batches of up to `batch_size`, in one database
  transaction. For each: insert (consumer, event id) into `inbox`, where a conflict means a
  duplicate, which is skipped; advance the aggregate's row in `inbox_positions`; run the handler
  with the session (a `batched` subscription's handler runs once with all the new events).
  Commit, then ack every message of the batch at once. A crash after the commit and before the
  ack redelivers the messages and the inbox turns them into duplicates; a crash before the
  commit loses nothing.
* If a handler raises, the batch is rolled back; the events before the failing one are
  committed again together and the ones after it go on as the next batch, so only the failing
  one is affected (when it cannot be told apart, each event gets its own transaction). It is
  republished (confirmed) to a wait queue that holds it `retry_delay * 2**(failures - 1)`
  seconds (at most `max_retry_delay`) before it expires back into the work queue, and the
  original is acked. After `max_attempts` failures it goes to the subscription's dead-letter
  queue with the error in its headers (`dockyard dlq list` and `dockyard dlq replay`). A
  message that is not a valid envelope is dead-lettered at once.
* Losing the database connection is not the handler's fault: the consumer reconnects and the
  unacked messages are redelivered without counting an attempt.

Order: relays publish an aggregate's events in sequence order and a queue delivers in order, so
they arrive in order unless a retry, a replayed dead letter or a redelivery interleaves. The
inbox (shared.messaging.inbox) keeps the highest sequence applied per (consumer, aggregate). An
event whose sequence is not above it (with a new id: duplicates are caught first) is out of
order: it is counted in `dockyard_consumer_out_of_order_total`, logged, described in the
position row's `note`, and then still handled, because it carries a change not applied yet and
dropping it would lose that change. A subscription whose handler applies snapshots (the latest
state wins) sets `skip_stale=True` to acknowledge such events without running the handler. The
position never moves backwards. Gaps are normal: a subscription only sees the event types it
binds.

Handlers do all their database work through `session` and never commit it. Anything else they
touch (Redis, HTTP) must be idempotent too: a rolled-back batch runs again, and delivery is
at-least-once.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import amqp
from prometheus_client import Counter
from psycopg2.extensions import TRANSACTION_STATUS_INERROR
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from shared.db import session_factory
from shared.events import Envelope
from shared.messaging.broker import (
    ConfirmingPublisher,
    close_quietly,
    connect,
    drain_available,
    wait_readable,
)
from shared.messaging.inbox import Inbox
from shared.messaging.runtime import Stopper
from shared.messaging.topology import CONSUMER_MAX_LENGTH, Topology
from shared.messaging.wire import (
    ATTEMPTS_HEADER,
    CONSUMER_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    ROUTING_KEY_HEADER,
    attempts_of,
    copy_with_headers,
    envelope_from_message,
    headers_of,
    routing_key_of,
)
from shared.outbox.tables import MessagingTables
from shared.reconnect import Reconnects

log = logging.getLogger(__name__)

#: What a subscription runs for each event, inside the transaction that records it in the inbox.
Handler = Callable[[Envelope, Session], None]
#: What a `batched` subscription runs once per transaction, for its new events in delivery order.
BatchHandler = Callable[[list[Envelope], Session], None]

HANDLED = Counter("dockyard_consumer_handled_total", "Events handled and committed", ["consumer"])
DUPLICATES = Counter(
    "dockyard_consumer_duplicates_total",
    "Redelivered events dropped because the inbox already had them",
    ["consumer"],
)
OUT_OF_ORDER = Counter(
    "dockyard_consumer_out_of_order_total",
    "Events whose sequence was not above the last one applied for their aggregate",
    ["consumer"],
)
RETRIED = Counter(
    "dockyard_consumer_retries_total", "Failed attempts scheduled for a retry", ["consumer"]
)
DEAD_LETTERED = Counter(
    "dockyard_consumer_dead_lettered_total", "Messages moved to the dead-letter queue", ["consumer"]
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,150}$")
#: How long one wait blocks at most, so heartbeats and stop() are served in time.
MAX_WAIT = 1.0
#: How often old inbox rows are deleted.
PRUNE_INTERVAL = 3600.0


@dataclass(frozen=True)
class Subscription:
    """One consumer: its name, the routing keys its queue binds, its handler and retry policy.

    The name is global (prefix it with the service, e.g. `files.tokens-revoked`): it names the
    queues and the rows in the inbox tables. Bindings are topic patterns like `auth.*`.

    With `batched`, the handler is a BatchHandler: it is called once per transaction with every
    new event of the batch (duplicates and skipped stale events left out), so it can write them
    with one statement. If it raises, the events are handled again one per transaction (a list
    of one), so only the failing event is retried or dead-lettered.
    """

    name: str
    bindings: Sequence[str]
    handler: Handler | BatchHandler
    max_attempts: int = 5
    retry_delay: float = 1.0
    max_retry_delay: float = 300.0
    skip_stale: bool = False
    batched: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"subscription name {self.name!r}: use [a-z0-9_.-], start alphanumeric"
            )
        object.__setattr__(self, "bindings", tuple(self.bindings))
        if not self.bindings:
            raise ValueError(f"subscription {self.name!r} binds no routing key")
        if self.max_attempts < 1 or self.retry_delay <= 0:
            raise ValueError(f"subscription {self.name!r}: max_attempts >= 1, retry_delay > 0")

    def retry_delay_ms(self, failures: int) -> int:
        """Milliseconds to wait before the attempt that follows `failures` failed ones."""
        seconds = min(self.retry_delay * 2 ** (failures - 1), self.max_retry_delay)
        return max(1, round(seconds * 1000))

    def retry_delays_ms(self) -> list[int]:
        """Every wait this subscription may use, one per retry."""
        return [self.retry_delay_ms(n) for n in range(1, self.max_attempts)]


class Outcome(enum.Enum):
    """What became of one delivered event."""

    HANDLED = "handled"
    DUPLICATE = "duplicate"
    STALE_HANDLED = "stale_handled"
    STALE_SKIPPED = "stale_skipped"


@dataclass(frozen=True)
class Result:
    """The outcome of one event, and the aggregate's previous position if it was stale."""

    outcome: Outcome
    envelope: Envelope
    last_sequence: int | None = None


class _HandlerFailed(Exception):
    """A handler (or the commit of its writes) failed; `index` is the failing item when known."""

    def __init__(self, error: BaseException, index: int | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.index = index


@dataclass(eq=False)
class _Lane:
    subscription: Subscription
    queue: str
    channel: amqp.Channel | None = None
    buffer: list[amqp.Message] = field(default_factory=list)


class ConsumerCancelled(RuntimeError):
    """The broker cancelled a consumer (its queue was deleted); reconnecting re-declares it."""


def _connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


class Consumer:
    """Runs subscriptions against one service's schema until stopped; see the module docstring.

    `after_ack(subscription_name, envelopes)` is called with the envelopes a batch settled
    (handled, duplicate or out of order; not those sent to a retry or dead-lettered) once they
    are acked: a hook for benchmarks and tests.
    """

    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        *,
        engine: Engine,
        tables: MessagingTables,
        amqp_url: str,
        namespace: str,
        prefetch: int = 1000,
        batch_size: int = 500,
        inbox_retention_days: float = 7.0,
        queue_max_length: int = CONSUMER_MAX_LENGTH,
        stopper: Stopper | None = None,
        after_ack: Callable[[str, list[Envelope]], None] | None = None,
    ) -> None:
        names = [s.name for s in subscriptions]
        if len(set(names)) != len(names):
            raise ValueError(f"subscription names repeat: {names}")
        self.topology = Topology(namespace, consumer_max_length=queue_max_length)
        self.lanes = [_Lane(s, self.topology.consumer_queue(s.name)) for s in subscriptions]
        self.engine = engine
        self.sessions = session_factory(engine)
        self.inbox = Inbox(tables)
        self.amqp_url = amqp_url
        self.prefetch = prefetch
        self.batch_size = batch_size
        self.inbox_retention_days = inbox_retention_days
        self.stopper = stopper or Stopper()
        self.after_ack = after_ack
        #: Set once the queues are declared and consumed (tests and benchmarks wait for it).
        self.ready = threading.Event()
        self._connection: amqp.Connection | None = None
        self._publisher: ConfirmingPublisher | None = None
        self._database: Connection | None = None
        self._reconnects = Reconnects("consumer", log)
        self._next_prune = 0.0

    def stop(self) -> None:
        """Finish the current batch, then make run() return (unprocessed messages go back)."""
        self.stopper.stop()

    def run(self) -> None:
        """Consume until stopped, reconnecting after failures."""
        log.info("consumer started", extra={"subscriptions": [lane.queue for lane in self.lanes]})
        while not self.stopper.is_set():
            delay = None
            try:
                self._open()
                self._serve()
            except Exception as exc:
                delay = self._reconnects.failed(exc)
            finally:
                self._close()
            if delay is not None:
                self.stopper.wait(delay)
        log.info("consumer stopped")

    def _open(self) -> None:
        # One database connection for every batch: checking one out of the pool would ping
        # the server first, a round trip per batch. Losing it makes run() reconnect.
        self._database = self.engine.connect()
        self._connection = connect(self.amqp_url, name=f"consumer-{os.getpid()}")
        self._publisher = ConfirmingPublisher(self._connection)
        for lane in self.lanes:
            sub = lane.subscription
            channel = self._connection.channel()
            self.topology.declare_consumer(
                channel, sub.name, bindings=sub.bindings, retry_delays_ms=sub.retry_delays_ms()
            )
            channel.basic_qos(0, self.prefetch, False)
            lane.buffer.clear()
            channel.basic_consume(
                lane.queue, callback=lane.buffer.append, no_ack=False, on_cancel=self._cancelled
            )
            lane.channel = channel
        self._reconnects.succeeded()
        self.ready.set()

    def _cancelled(self, consumer_tag: str) -> None:
        raise ConsumerCancelled(f"the broker cancelled consumer {consumer_tag}")

    def _close(self) -> None:
        # Closing the connection hands every unacked message back to its queue, in order.
        close_quietly(self._connection)
        self._connection = self._publisher = None
        if self._database is not None:
            try:
                self._database.close()
            except SQLAlchemyError:
                pass
            self._database = None
        for lane in self.lanes:
            lane.channel = None
            lane.buffer.clear()

    def _serve(self) -> None:
        assert self._connection is not None
        while not self.stopper.is_set():
            if not any(lane.buffer for lane in self.lanes):
                self._prune_inbox()
                readable = wait_readable(self._connection, MAX_WAIT, extra=[self.stopper.fileno()])
                self._connection.heartbeat_tick()
                if not readable or self.stopper.is_set():
                    continue
            drain_available(self._connection, limit=3 * self.batch_size * len(self.lanes))
            for lane in self.lanes:
                if lane.buffer and not self.stopper.is_set():
                    batch = lane.buffer[: self.batch_size]
                    del lane.buffer[: len(batch)]
                    self._process(lane, batch)

    def _process(self, lane: _Lane, batch: list[amqp.Message]) -> None:
        """Handle a batch, settle its failures, then ack it."""
        decoded: list[tuple[amqp.Message, Envelope]] = []
        for message in batch:
            try:
                decoded.append((message, envelope_from_message(message)))
            except ValueError as exc:
                self._dead_letter(lane, message, f"malformed message: {exc}")
        results = self._settle(lane, decoded)
        assert lane.channel is not None
        lane.channel.basic_ack(batch[-1].delivery_tag, multiple=True)
        self._account(lane.subscription, results)
        if self.after_ack is not None:
            self.after_ack(lane.subscription.name, [r.envelope for r in results])

    def _settle(self, lane: _Lane, items: list[tuple[amqp.Message, Envelope]]) -> list[Result]:
        """Commit `items`, setting failing ones aside for a retry or the dead-letter queue.

        When a per-event handler fails, the events before it are committed together, the
        failing one is set aside and the rest go on as a batch: each event is handled at most
        twice, and every event that does not fail is committed exactly once. When the failing
        event is not known (a batched handler, or the commit itself failed), each event gets
        its own transaction.
        """
        results: list[Result] = []
        while items:
            try:
                return results + self._transaction(lane, items)
            except _HandlerFailed as failed:
                if len(items) == 1:
                    self._failed(lane, items[0][0], failed.error)
                    return results
                if failed.index is None:
                    for item in items:
                        try:
                            results += self._transaction(lane, [item])
                        except _HandlerFailed as failed_one:
                            self._failed(lane, item[0], failed_one.error)
                    return results
                if failed.index:
                    results += self._settle(lane, items[: failed.index])
                self._failed(lane, items[failed.index][0], failed.error)
                items = items[failed.index + 1 :]
        return results

    def _transaction(self, lane: _Lane, items: list[tuple[amqp.Message, Envelope]]) -> list[Result]:
        """Record and handle `items` in one transaction; _HandlerFailed if a handler failed."""
        session = self.sessions(bind=self._database)
        try:
            results = self._apply(lane, session, [envelope for _, envelope in items])
            try:
                # A durable commit (synchronous_commit stays on, unlike the relay's delete): the
                # batch is acked right after it, and an ack must never outlive the inbox rows.
                session.commit()
            except DBAPIError as exc:
                if _connection_lost(exc):
                    raise
                # Deferred constraints and serialization failures of the handler's writes.
                raise _HandlerFailed(exc) from exc
            return results
        except BaseException:
            try:
                session.rollback()
            except SQLAlchemyError:
                pass
            raise
        finally:
            session.close()

    def _apply(self, lane: _Lane, session: Session, envelopes: list[Envelope]) -> list[Result]:
        """Record a batch in the inbox and run the handler for its new events, in `session`."""
        sub = lane.subscription
        status = session.connection().connection.dbapi_connection.info
        results: list[Result] = []
        batch: list[Envelope] = []
        for index, admitted in enumerate(self.inbox.admit(session, sub.name, envelopes)):
            envelope, last = admitted.envelope, admitted.last_sequence
            if admitted.duplicate:
                results.append(Result(Outcome.DUPLICATE, envelope))
                continue
            if last is not None and sub.skip_stale:
                results.append(Result(Outcome.STALE_SKIPPED, envelope, last))
                continue
            if sub.batched:
                batch.append(envelope)
            else:
                self._run_handler(sub.handler, (envelope, session), status, index)
            outcome = Outcome.HANDLED if last is None else Outcome.STALE_HANDLED
            results.append(Result(outcome, envelope, last))
        if batch:
            self._run_handler(sub.handler, (batch, session), status)
        return results

    def _run_handler(self, handler, args: tuple, status, index: int | None = None) -> None:
        """Run a handler; _HandlerFailed (naming item `index`) if it fails or breaks the session."""
        try:
            handler(*args)
        except Exception as exc:
            if _connection_lost(exc):
                raise
            raise _HandlerFailed(exc, index) from exc
        if status.transaction_status == TRANSACTION_STATUS_INERROR:
            error = RuntimeError("the handler swallowed a database error")
            raise _HandlerFailed(error, index)

    def _account(self, sub: Subscription, results: list[Result]) -> None:
        counts = {outcome: 0 for outcome in Outcome}
        for result in results:
            counts[result.outcome] += 1
            if result.outcome in (Outcome.STALE_HANDLED, Outcome.STALE_SKIPPED):
                log.warning(
                    "out-of-order event: sequence %s after %s",
                    result.envelope.sequence,
                    result.last_sequence,
                    extra={
                        "consumer": sub.name,
                        "event_id": result.envelope.id,
                        "aggregate_type": result.envelope.aggregate_type,
                        "aggregate_id": result.envelope.aggregate_id,
                        "handled": result.outcome is Outcome.STALE_HANDLED,
                    },
                )
        HANDLED.labels(sub.name).inc(counts[Outcome.HANDLED] + counts[Outcome.STALE_HANDLED])
        DUPLICATES.labels(sub.name).inc(counts[Outcome.DUPLICATE])
        OUT_OF_ORDER.labels(sub.name).inc(
            counts[Outcome.STALE_HANDLED] + counts[Outcome.STALE_SKIPPED]
        )
        if counts[Outcome.DUPLICATE]:
            log.info(
                "dropped %d duplicate(s)", counts[Outcome.DUPLICATE], extra={"consumer": sub.name}
            )

    def _failed(self, lane: _Lane, message: amqp.Message, error: BaseException) -> None:
        """Schedule a retry of a failed message, or dead-letter it after its last attempt."""
        sub = lane.subscription
        failures = attempts_of(message) + 1
        if failures >= sub.max_attempts:
            self._dead_letter(lane, message, _describe(error), failures=failures, error=error)
            return
        delay_ms = sub.retry_delay_ms(failures)
        headers = headers_of(message)
        headers.update(
            {
                ATTEMPTS_HEADER: failures,
                ERROR_HEADER: _describe(error),
                ROUTING_KEY_HEADER: routing_key_of(message),
            }
        )
        self._publish(self.topology.retry_queue(sub.name, delay_ms), message, headers)
        RETRIED.labels(sub.name).inc()
        log.warning(
            "handler failed (attempt %d of %d); retrying in %d ms",
            failures,
            sub.max_attempts,
            delay_ms,
            exc_info=(type(error), error, error.__traceback__),
            extra={"consumer": sub.name, "event_id": message.properties.get("message_id")},
        )

    def _dead_letter(
        self,
        lane: _Lane,
        message: amqp.Message,
        reason: str,
        *,
        failures: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        sub = lane.subscription
        headers = headers_of(message)
        headers.update(
            {
                ATTEMPTS_HEADER: failures if failures is not None else attempts_of(message),
                ERROR_HEADER: reason,
                FAILED_AT_HEADER: datetime.now(UTC).isoformat(timespec="milliseconds"),
                CONSUMER_HEADER: sub.name,
                ROUTING_KEY_HEADER: routing_key_of(message),
            }
        )
        self._publish(self.topology.dead_letter_queue(sub.name), message, headers)
        DEAD_LETTERED.labels(sub.name).inc()
        log.error(
            "dead-lettered a message: %s",
            reason,
            exc_info=(type(error), error, error.__traceback__) if error else None,
            extra={"consumer": sub.name, "event_id": message.properties.get("message_id")},
        )

    def _publish(self, queue: str, message: amqp.Message, headers: dict) -> None:
        assert self._publisher is not None
        # mandatory: a missing queue must fail (and the message stay unacked), not drop it.
        self._publisher.publish([("", queue, copy_with_headers(message, headers))], mandatory=True)

    def _prune_inbox(self) -> None:
        """Delete inbox rows older than the retention, at most once per PRUNE_INTERVAL."""
        if not self.inbox_retention_days or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_INTERVAL
        names = [lane.subscription.name for lane in self.lanes]
        try:
            with self.sessions.begin() as session:
                deleted = self.inbox.prune(
                    session, names, older_than_days=self.inbox_retention_days
                )
        except SQLAlchemyError:
            log.warning("could not prune the inbox", exc_info=True)
            return
        if deleted:
            log.info("pruned %d inbox rows", deleted, extra={"consumers": names})
