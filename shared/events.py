"""Domain events and the one envelope every event travels in."""

from __future__ import annotations

import contextvars
import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)


def current_correlation_id() -> str | None:
    """The correlation (request) id of the work in progress, if any."""
    return _correlation_id.get()


def set_correlation_id(value: str | None) -> contextvars.Token:
    """Bind a correlation id to the current context; returns a token for reset."""
    return _correlation_id.set(value)


def reset_correlation_id(token: contextvars.Token) -> None:
    """Restore the correlation id bound before set_correlation_id()."""
    _correlation_id.reset(token)


@dataclass(frozen=True)
class Event:
    """Base of domain events: frozen dataclasses named in the past tense.

    Subclasses set `aggregate_type` and `aggregate_field` (the field holding the aggregate id).
    """

    aggregate_type: ClassVar[str] = ""
    aggregate_field: ClassVar[str] = ""
    version: ClassVar[int] = 1

    @classmethod
    def event_type(cls) -> str:
        """The event's type name as carried in the envelope (the class name)."""
        return cls.__name__

    @property
    def aggregate_id(self) -> str:
        """The id of the aggregate the event belongs to."""
        return str(getattr(self, self.aggregate_field))

    def payload(self) -> dict[str, Any]:
        """The event's fields as a JSON-ready mapping."""
        return {
            f.name: (str(v) if isinstance(v, uuid.UUID) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }


@dataclass(frozen=True)
class Envelope:
    """What travels on the wire for every event."""

    id: str
    type: str
    version: int
    source: str
    occurred_at: str
    aggregate_type: str
    aggregate_id: str
    sequence: int
    correlation_id: str | None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        """`<source>.<Type>`: what consumers bind to."""
        return f"{self.source}.{self.type}"

    def to_dict(self) -> dict[str, Any]:
        """The envelope as a JSON-ready mapping."""
        # Not dataclasses.asdict(): its deep copy of the payload dominated the relay's profile.
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["payload"] = dict(self.payload)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        """Rebuild an envelope from its wire form; raises ValueError when malformed."""
        try:
            return cls(
                id=str(data["id"]),
                type=str(data["type"]),
                version=int(data["version"]),
                source=str(data["source"]),
                occurred_at=str(data["occurred_at"]),
                aggregate_type=str(data["aggregate_type"]),
                aggregate_id=str(data["aggregate_id"]),
                sequence=int(data["sequence"]),
                correlation_id=data.get("correlation_id"),
                payload=dict(data.get("payload") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed envelope: {exc}") from None

    @property
    def occurred(self) -> datetime:
        """occurred_at parsed as a datetime."""
        return datetime.fromisoformat(self.occurred_at)
