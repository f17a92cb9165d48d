"""Events on RabbitMQ: topology, pipelined confirms, idempotent consumers and dead letters."""

from shared.events import Envelope
from shared.messaging.consumer import BatchHandler, Handler, Subscription

__all__ = ["BatchHandler", "Envelope", "Handler", "Subscription"]
