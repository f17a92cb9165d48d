"""`dockyard dlq`: list and replay a subscription's dead letters, or the unroutable events.

    dockyard dlq list <consumer> [--limit N] [--json]
    dockyard dlq replay <consumer> [--limit N]
    dockyard dlq list --unroutable | dockyard dlq replay --unroutable

Listing takes messages without acking them and closes the channel, which puts them back in
order. Replaying moves dead letters to the front door of their subscription's queue (not the
events exchange: other subscriptions already have them) with a fresh attempt count, and
unroutable events back to the events exchange under their routing key. Each chunk is acked
only once the broker confirmed the copies, and at most the number of messages present at the
start is replayed, so messages that fail again are not replayed in a loop.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import amqp

from shared.config import CommonSettings
from shared.messaging.broker import ConfirmingPublisher, PublishError, close_quietly, connect
from shared.messaging.topology import Topology
from shared.messaging.wire import (
    ATTEMPTS_HEADER,
    CONSUMER_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    REPLAYS_HEADER,
    copy_with_headers,
    headers_of,
    routing_key_of,
)

#: Messages fetched and confirmed together while replaying.
CHUNK = 100


@dataclass(frozen=True)
class DeadLetter:
    """One message waiting in a dead-letter (or the unroutable) queue."""

    message_id: str | None
    routing_key: str
    attempts: int
    error: str | None
    failed_at: str | None
    body: str

    def line(self) -> str:
        """A one-line summary for people."""
        parts = [self.message_id or "-", self.routing_key or "-"]
        if self.attempts:
            parts.append(f"attempts={self.attempts}")
        if self.failed_at:
            parts.append(f"failed_at={self.failed_at}")
        if self.error:
            parts.append(f"error={self.error.splitlines()[0] if self.error else ''}")
        return "  ".join(parts)

    def as_dict(self) -> dict:
        """The dead letter as JSON, with the envelope parsed when it is JSON."""
        try:
            envelope = json.loads(self.body)
        except ValueError:
            envelope = self.body
        return {
            "message_id": self.message_id,
            "routing_key": self.routing_key,
            "attempts": self.attempts,
            "error": self.error,
            "failed_at": self.failed_at,
            "envelope": envelope,
        }


class QueueMissing(LookupError):
    """The queue does not exist (the subscription never ran, or the name is wrong)."""


def _describe(message: amqp.Message) -> DeadLetter:
    headers = headers_of(message)
    body = message.body
    return DeadLetter(
        message_id=message.properties.get("message_id"),
        routing_key=routing_key_of(message),
        attempts=int(headers.get(ATTEMPTS_HEADER, 0) or 0),
        error=headers.get(ERROR_HEADER),
        failed_at=headers.get(FAILED_AT_HEADER),
        body=body.decode(errors="replace") if isinstance(body, bytes | bytearray) else str(body),
    )


def _message_count(connection: amqp.Connection, queue: str) -> int:
    channel = connection.channel()
    try:
        _name, count, _consumers = channel.queue_declare(queue, passive=True)
    except amqp.exceptions.NotFound:
        raise QueueMissing(queue) from None
    channel.close()
    return count


def list_dead_letters(amqp_url: str, queue: str, *, limit: int = 100) -> Iterator[DeadLetter]:
    """Peek at up to `limit` messages of `queue`, leaving them there (in order)."""
    connection = connect(amqp_url, name="dockyard-dlq")
    try:
        _message_count(connection, queue)
        channel = connection.channel()
        for _ in range(limit):
            message = channel.basic_get(queue, no_ack=False)
            if message is None:
                break
            yield _describe(message)
        # Closing without acking puts every peeked message back at its place in the queue.
        channel.close()
    finally:
        close_quietly(connection)


def replay(
    amqp_url: str,
    queue: str,
    *,
    exchange: str,
    routing_key: str | None,
    limit: int | None = None,
) -> int:
    """Move messages of `queue` to `exchange`; returns how many were moved.

    With `routing_key` None each message goes under its event's own routing key.
    """
    connection = connect(amqp_url, name="dockyard-dlq")
    try:
        present = _message_count(connection, queue)
        budget = present if limit is None else min(limit, present)
        if routing_key is not None:
            _message_count(connection, routing_key)
        publisher = ConfirmingPublisher(connection)
        source = connection.channel()
        moved = 0
        while moved < budget:
            chunk: list[amqp.Message] = []
            while len(chunk) < min(CHUNK, budget - moved):
                message = source.basic_get(queue, no_ack=False)
                if message is None:
                    break
                chunk.append(message)
            if not chunk:
                break
            publisher.publish(
                [
                    (exchange, routing_key or routing_key_of(m), copy_with_headers(m, _fresh(m)))
                    for m in chunk
                ],
                mandatory=routing_key is not None,
            )
            source.basic_ack(chunk[-1].delivery_tag, multiple=True)
            moved += len(chunk)
        return moved
    finally:
        close_quietly(connection)


def _fresh(message: amqp.Message) -> dict:
    headers = headers_of(message)
    for key in (ATTEMPTS_HEADER, ERROR_HEADER, FAILED_AT_HEADER, CONSUMER_HEADER):
        headers.pop(key, None)
    headers[REPLAYS_HEADER] = int(headers.get(REPLAYS_HEADER, 0) or 0) + 1
    return headers


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `dockyard dlq`."""
    parser = argparse.ArgumentParser(
        prog="dockyard dlq", description="Inspect and replay dead-lettered or unroutable events."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for action, text in (("list", "show waiting messages"), ("replay", "send them back")):
        p = sub.add_parser(action, help=text)
        p.add_argument("consumer", nargs="?", help="subscription name, e.g. files.tokens-revoked")
        p.add_argument(
            "--unroutable", action="store_true", help="the events no queue was bound for"
        )
        p.add_argument(
            "--limit", type=int, default=100 if action == "list" else None, help="at most N"
        )
        if action == "list":
            p.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`dockyard dlq list|replay <consumer>` (or `--unroutable`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.consumer) == args.unroutable:
        parser.error("name a consumer or pass --unroutable (not both)")
    settings = CommonSettings()
    topology = Topology(settings.NAMESPACE)
    queue = (
        topology.unroutable_queue if args.unroutable else topology.dead_letter_queue(args.consumer)
    )
    try:
        if args.action == "list":
            count = 0
            for dead in list_dead_letters(settings.AMQP_URL, queue, limit=args.limit):
                print(json.dumps(dead.as_dict()) if args.json else dead.line())
                count += 1
            print(f"{count} message(s) shown from {queue}", file=sys.stderr)
            return 0
        if args.unroutable:
            moved = replay(
                settings.AMQP_URL,
                queue,
                exchange=topology.events_exchange,
                routing_key=None,
                limit=args.limit,
            )
            target = topology.events_exchange
        else:
            target = topology.consumer_queue(args.consumer)
            moved = replay(
                settings.AMQP_URL, queue, exchange="", routing_key=target, limit=args.limit
            )
        print(f"replayed {moved} message(s) from {queue} to {target}")
        return 0
    except QueueMissing as missing:
        print(f"dockyard dlq: no queue {missing} (has the subscription run?)", file=sys.stderr)
        return 1
    except PublishError as refused:
        # A full target queue (EVENT_QUEUE_MAX_LENGTH) nacks; the refused chunk was not acked.
        print(
            f"dockyard dlq: the broker refused a replay ({refused}); the messages not moved stay "
            f"in {queue}: replay again once the target has drained",
            file=sys.stderr,
        )
        return 1
