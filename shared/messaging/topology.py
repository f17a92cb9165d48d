"""Names and declarations of every exchange and queue, all prefixed with the namespace.

    <ns>.events                       topic exchange the relays publish to, routing key
                                      `<source>.<Type>`; its alternate exchange catches the rest
    <ns>.events.unroutable            fanout exchange (the alternate) and the queue that keeps
                                      unroutable events for `dockyard dlq ... --unroutable`
    <ns>.events.unroutable.tally      a copy of each, which relays read only to count and log
    <ns>.events.unroutable.dropped    exchange and queue of the events the unroutable queue
                                      dropped (its oldest, once full); relays count and log them
    <ns>.consumer.<name>              one durable queue per subscription, bound to its keys;
                                      at most consumer_max_length messages, beyond which the
                                      broker nacks a publish (reject-publish), never drops
    <ns>.consumer.<name>.retry.<N>ms  wait queues: messages expire after N ms back into the queue
    <ns>.consumer.<name>.dlq          dead letters of the subscription

Every declaration here is idempotent, and everyone who publishes or consumes declares what they
touch before touching it, so the order processes start in does not matter (except that events
published before a subscription's first start land in the unroutable queue).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import amqp

log = logging.getLogger(__name__)

#: How many unroutable copies wait to be counted before the oldest are dropped (counting only).
TALLY_MAX_LENGTH = 100_000
#: How many messages a subscription's work queue holds; beyond, the broker refuses (nacks) a
#: publish rather than dropping anything, so the relay keeps the event in its outbox and retries.
CONSUMER_MAX_LENGTH = 1_000_000
#: How many unroutable events are kept for `dockyard dlq replay --unroutable`; beyond, the oldest
#: is dropped (and counted): a publisher nobody listens to must not fill the broker's disk.
UNROUTABLE_MAX_LENGTH = 100_000


@dataclass(frozen=True)
class Topology:
    """The broker objects of one namespace."""

    namespace: str
    unroutable_max_length: int = UNROUTABLE_MAX_LENGTH
    consumer_max_length: int = CONSUMER_MAX_LENGTH

    @property
    def events_exchange(self) -> str:
        """The topic exchange every event is published to."""
        return f"{self.namespace}.events"

    @property
    def unroutable_exchange(self) -> str:
        """The events exchange's alternate exchange."""
        return f"{self.namespace}.events.unroutable"

    @property
    def unroutable_queue(self) -> str:
        """Where unroutable events are kept until inspected or replayed."""
        return f"{self.namespace}.events.unroutable"

    @property
    def unroutable_tally_queue(self) -> str:
        """Copies of unroutable events that relays count, log and drop."""
        return f"{self.namespace}.events.unroutable.tally"

    @property
    def unroutable_dropped_exchange(self) -> str:
        """Where the unroutable queue dead-letters the events it drops when full."""
        return f"{self.namespace}.events.unroutable.dropped"

    @property
    def unroutable_dropped_queue(self) -> str:
        """Dropped unroutable events, which relays count, log and discard."""
        return f"{self.namespace}.events.unroutable.dropped"

    def consumer_queue(self, consumer: str) -> str:
        """The work queue of a subscription."""
        return f"{self.namespace}.consumer.{consumer}"

    def retry_queue(self, consumer: str, delay_ms: int) -> str:
        """The wait queue holding a subscription's messages for `delay_ms` before a retry."""
        return f"{self.namespace}.consumer.{consumer}.retry.{delay_ms}ms"

    def dead_letter_queue(self, consumer: str) -> str:
        """Where a subscription's poison messages end up."""
        return f"{self.namespace}.consumer.{consumer}.dlq"

    def declare_events(self, channel: amqp.Channel) -> None:
        """Declare the events exchange, its alternate exchange and the unroutable queues."""
        channel.exchange_declare(
            self.unroutable_dropped_exchange, "fanout", durable=True, auto_delete=False
        )
        channel.queue_declare(
            self.unroutable_dropped_queue,
            durable=True,
            auto_delete=False,
            arguments={"x-max-length": TALLY_MAX_LENGTH},
        )
        channel.queue_bind(self.unroutable_dropped_queue, self.unroutable_dropped_exchange, "")
        channel.exchange_declare(
            self.unroutable_exchange, "fanout", durable=True, auto_delete=False
        )
        self._declare_unroutable_queue(channel)
        channel.queue_bind(self.unroutable_queue, self.unroutable_exchange, "")
        channel.queue_declare(
            self.unroutable_tally_queue,
            durable=True,
            auto_delete=False,
            arguments={"x-max-length": TALLY_MAX_LENGTH},
        )
        channel.queue_bind(self.unroutable_tally_queue, self.unroutable_exchange, "")
        channel.exchange_declare(
            self.events_exchange,
            "topic",
            durable=True,
            auto_delete=False,
            arguments={"alternate-exchange": self.unroutable_exchange},
        )

    def _declare_unroutable_queue(self, channel: amqp.Channel) -> None:
        arguments = {
            "x-max-length": self.unroutable_max_length,
            "x-overflow": "drop-head",
            "x-dead-letter-exchange": self.unroutable_dropped_exchange,
        }
        if not _declare_bounded(channel, self.unroutable_queue, arguments):
            log.warning(
                "%s was declared without a length bound and may grow without limit; replay it "
                "(dockyard dlq replay --unroutable), delete it, and restart a relay to bound it",
                self.unroutable_queue,
            )

    def declare_consumer(
        self,
        channel: amqp.Channel,
        consumer: str,
        *,
        bindings: Iterable[str],
        retry_delays_ms: Iterable[int],
    ) -> None:
        """Declare a subscription's queue and bindings, its wait queues and its dead letters."""
        self.declare_events(channel)
        queue = self.consumer_queue(consumer)
        bound = {"x-max-length": self.consumer_max_length, "x-overflow": "reject-publish"}
        if not _declare_bounded(channel, queue, bound):
            log.warning(
                "%s was declared with other length arguments (unbounded, by an older release, or "
                "another limit) and keeps them; to apply x-max-length %d, stop its consumers and "
                "relays, let it drain, delete it and restart the consumer",
                queue,
                self.consumer_max_length,
            )
        for routing_key in bindings:
            channel.queue_bind(queue, self.events_exchange, routing_key)
        for delay_ms in sorted(set(retry_delays_ms)):
            channel.queue_declare(
                self.retry_queue(consumer, delay_ms),
                durable=True,
                auto_delete=False,
                arguments={
                    "x-message-ttl": delay_ms,
                    # Expired messages go back through the default exchange to the work queue.
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue,
                },
            )
        channel.queue_declare(self.dead_letter_queue(consumer), durable=True, auto_delete=False)


def _declare_bounded(channel: amqp.Channel, queue: str, arguments: dict) -> bool:
    """Declare a durable queue with length arguments; False if it exists with other ones.

    On a channel of its own: a queue declared earlier with other arguments (by an older
    release) refuses the declaration by closing the channel, and the caller's must survive.
    """
    probe = channel.connection.channel()
    try:
        probe.queue_declare(queue, durable=True, auto_delete=False, arguments=arguments)
    except amqp.exceptions.PreconditionFailed:
        return False
    probe.close()
    return True
