"""How an Envelope travels as an AMQP message, and the headers retries and dead letters add."""

from __future__ import annotations

import json
import uuid
from typing import Any

import amqp

from shared.events import Envelope

#: Failed attempts so far (absent on a first delivery).
ATTEMPTS_HEADER = "x-dockyard-attempts"
#: The last handler error, `<ExceptionType>: <message>`.
ERROR_HEADER = "x-dockyard-error"
#: When the message was dead-lettered (ISO 8601, UTC).
FAILED_AT_HEADER = "x-dockyard-failed-at"
#: The event's routing key: retries and dead letters travel under their queue's name instead.
ROUTING_KEY_HEADER = "x-dockyard-routing-key"
#: The subscription that gave up on the message.
CONSUMER_HEADER = "x-dockyard-consumer"
#: How many times the message was replayed from a dead-letter or unroutable queue.
REPLAYS_HEADER = "x-dockyard-replays"


_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def envelope_message(envelope: Envelope) -> amqp.Message:
    """The persistent JSON message carrying `envelope`."""
    data = envelope.to_dict()
    return _message(data, _encode(data))


def stored_envelope_message(fields: dict[str, Any], payload_json: str) -> amqp.Message:
    """The message of an envelope whose payload is already JSON text (the outbox's jsonb).

    `fields` are the envelope's other fields, in Envelope's order. The payload is spliced in
    as it is, not parsed and encoded again: for the relay that was a third of the work per event.
    """
    return _message(fields, _encode(fields)[:-1] + ',"payload":' + payload_json + "}")


def _message(fields: dict[str, Any], body: str) -> amqp.Message:
    properties: dict[str, Any] = {"type": fields["type"], "app_id": fields["source"]}
    if fields["correlation_id"]:
        properties["correlation_id"] = fields["correlation_id"]
    return amqp.Message(
        body.encode(),
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        message_id=fields["id"],
        **properties,
    )


def envelope_from_message(message: amqp.Message) -> Envelope:
    """Decode a delivered message; raises ValueError when it is not a valid envelope."""
    body = message.body
    try:
        data = json.loads(body.decode() if isinstance(body, bytes | bytearray) else body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body is not a JSON object")
    envelope = Envelope.from_dict(data)
    try:
        uuid.UUID(envelope.id)
    except ValueError:
        raise ValueError(f"envelope id {envelope.id!r} is not a UUID") from None
    return envelope


def headers_of(message: amqp.Message) -> dict[str, Any]:
    """A copy of the message's application headers."""
    return dict(message.properties.get("application_headers") or {})


def attempts_of(message: amqp.Message) -> int:
    """Failed attempts recorded on the message so far."""
    try:
        return int(headers_of(message).get(ATTEMPTS_HEADER, 0))
    except (TypeError, ValueError):
        return 0


def routing_key_of(message: amqp.Message) -> str:
    """The event's own routing key, even on a retry or dead letter."""
    return str(
        headers_of(message).get(ROUTING_KEY_HEADER) or message.delivery_info.get("routing_key", "")
    )


def copy_with_headers(message: amqp.Message, headers: dict[str, Any]) -> amqp.Message:
    """The same body and properties under new headers, persistent."""
    properties = {
        key: value
        for key, value in message.properties.items()
        if key not in {"application_headers", "delivery_mode", "expiration"}
    }
    return amqp.Message(message.body, delivery_mode=2, application_headers=headers, **properties)
