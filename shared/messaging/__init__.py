"""Events on RabbitMQ: topology, pipelined confirms, idempotent consumers and dead letters."""

from shared.events import Envelope
from shared.messaging.consumer import Handler, Subscription

__all__ = ["Envelope", "Handler", "Subscription"]
