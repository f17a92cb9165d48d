"""The saga state machine: definitions, steps and the transitions events and timeouts make.

A saga is a sequence of steps. Starting a step runs its `action` (idempotent: it may run again
after a timeout, a retry or a rolled-back transaction), which does local work or asks other
services for theirs by raising events. A step that `awaits` reply events (routing keys such as
`files.UserFilesDeleted`) is done once every one of them has arrived for this saga; a step that
awaits nothing is done as soon as its action returns. A reply listed in `fails_on`, or a step
that outlives its timeout `attempts` times, fails the saga: the compensations of the steps
already done (and of the failing one) run in reverse order, then the saga is FAILED with the
reason. Nothing here touches a database or a broker: `store.py` loads and saves the record and
`SagaContext.emit` hands the raised events to the caller's outbox.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.events import Event


class SagaState(enum.StrEnum):
    """Where a saga is: running its steps, undoing them, or ended."""

    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


LIVE = (SagaState.RUNNING, SagaState.COMPENSATING)


@dataclass
class SagaContext:
    """What a step's action or compensation works with: the saga's inputs and a way to emit."""

    saga_id: str
    data: Mapping[str, Any]
    #: The orchestrator's database session (the saga record's transaction), when there is one.
    session: Any = None
    events: list[Event] = field(default_factory=list)
    #: Why the saga is failing, for a compensation to record (None while it is not).
    reason: str | None = None

    def emit(self, event: Event) -> None:
        """Raise an event; it is written to the outbox with the saga's new state."""
        self.events.append(event)


Action = Callable[[SagaContext], None]


@dataclass(frozen=True)
class Step:
    """One step: what starts it, the replies that end it, its timeout and its undoing."""

    name: str
    action: Action
    timeout: timedelta
    awaits: frozenset[str] = frozenset()
    fails_on: frozenset[str] = frozenset()
    compensate: Action | None = None
    #: How many times the step is started before its timeout fails the saga.
    attempts: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "awaits", frozenset(self.awaits))
        object.__setattr__(self, "fails_on", frozenset(self.fails_on))
        if self.timeout <= timedelta(0) or self.attempts < 1:
            raise ValueError(f"step {self.name!r}: timeout > 0 and attempts >= 1")


@dataclass(frozen=True)
class SagaDefinition:
    """A kind of saga: its name and its steps, in order."""

    kind: str
    steps: tuple[Step, ...]
    #: How long a compensation that raised waits before the sweep runs it again.
    compensation_timeout: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        names = [step.name for step in self.steps]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"saga {self.kind!r}: steps must be unique and at least one")

    def step(self, name: str) -> Step:
        """The step called `name`; KeyError otherwise."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"saga {self.kind!r} has no step {name!r}")

    def index(self, name: str) -> int:
        """The position of the step called `name`."""
        return self.steps.index(self.step(name))

    @property
    def routing_keys(self) -> frozenset[str]:
        """Every reply any step awaits or fails on (what the orchestrator subscribes to)."""
        keys: set[str] = set()
        for step in self.steps:
            keys |= step.awaits | step.fails_on
        return frozenset(keys)


@dataclass
class SagaRecord:
    """A saga's persisted state, as the machine reads and changes it."""

    id: str
    kind: str
    subject: str
    state: SagaState
    step: str
    attempt: int = 1
    data: dict[str, Any] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    deadline: datetime | None = None
    reason: str | None = None

    def note(self, now: datetime, what: str, **details: Any) -> None:
        """Append an entry to the history."""
        self.history.append({"at": now.isoformat(), "step": self.step, "what": what, **details})


class SagaNotRetryable(Exception):
    """Only a FAILED saga can be retried."""


def _context(record: SagaRecord, session: Any) -> SagaContext:
    return SagaContext(saga_id=record.id, data=record.data, session=session)


def _enter(
    definition: SagaDefinition, record: SagaRecord, step: Step, ctx: SagaContext, now: datetime
) -> None:
    """Start `step` (run its action); move on at once through steps that await nothing."""
    while True:
        record.step = step.name
        record.received = []
        record.note(now, "started", attempt=record.attempt)
        step.action(ctx)
        if step.awaits:
            record.deadline = now + step.timeout
            return
        record.note(now, "done")
        position = definition.index(step.name) + 1
        if position == len(definition.steps):
            record.state = SagaState.SUCCEEDED
            record.deadline = None
            record.note(now, "succeeded")
            return
        step = definition.steps[position]
        record.attempt = 1


def start(
    definition: SagaDefinition, record: SagaRecord, now: datetime, *, session: Any = None
) -> list[Event]:
    """Run the first step of a new saga; returns the events it raised."""
    ctx = _context(record, session)
    record.state = SagaState.RUNNING
    record.attempt = 1
    _enter(definition, record, definition.steps[0], ctx, now)
    return ctx.events


def _compensate(
    definition: SagaDefinition, record: SagaRecord, ctx: SagaContext, now: datetime
) -> None:
    """Undo the steps up to the current one, last first; FAILED once all are undone.

    A compensation that raises leaves the saga COMPENSATING with a deadline: the sweep runs
    the remaining compensations again then (each is idempotent).
    """
    record.state = SagaState.COMPENSATING
    ctx.reason = record.reason
    done = {entry["step"] for entry in record.history if entry["what"] == "compensated"}
    for step in reversed(definition.steps[: definition.index(record.step) + 1]):
        if step.compensate is None or step.name in done:
            continue
        try:
            step.compensate(ctx)
        except Exception as exc:  # noqa: BLE001 - any failure is retried by the sweep
            record.note(now, "compensation failed", compensating=step.name, error=repr(exc))
            record.deadline = now + definition.compensation_timeout
            return
        record.history.append({"at": now.isoformat(), "step": step.name, "what": "compensated"})
    record.state = SagaState.FAILED
    record.deadline = None
    record.note(now, "failed", reason=record.reason)


def fail(
    definition: SagaDefinition,
    record: SagaRecord,
    reason: str,
    now: datetime,
    *,
    session: Any = None,
) -> list[Event]:
    """Give up on a live saga: compensate what was done, then FAILED with `reason`."""
    ctx = _context(record, session)
    record.reason = reason
    _compensate(definition, record, ctx, now)
    return ctx.events


def on_event(
    definition: SagaDefinition,
    record: SagaRecord,
    routing_key: str,
    payload: Mapping[str, Any],
    now: datetime,
    *,
    session: Any = None,
) -> list[Event]:
    """Apply a reply to the saga; replies its current step does not expect are only noted."""
    if record.state != SagaState.RUNNING:
        return []
    step = definition.step(record.step)
    if routing_key in step.fails_on:
        reason = str(payload.get("reason") or f"{routing_key} during {step.name}")
        record.note(now, "reply", event=routing_key)
        return fail(definition, record, reason, now, session=session)
    if routing_key not in step.awaits or routing_key in record.received:
        record.note(now, "ignored", event=routing_key)
        return []
    record.received = [*record.received, routing_key]
    record.note(now, "reply", event=routing_key)
    if set(record.received) < step.awaits:
        return []
    record.note(now, "done")
    position = definition.index(step.name) + 1
    if position == len(definition.steps):
        record.state = SagaState.SUCCEEDED
        record.deadline = None
        record.note(now, "succeeded")
        return []
    ctx = _context(record, session)
    record.attempt = 1
    _enter(definition, record, definition.steps[position], ctx, now)
    return ctx.events


def on_timeout(
    definition: SagaDefinition, record: SagaRecord, now: datetime, *, session: Any = None
) -> list[Event]:
    """The deadline passed: start the step again, or fail once its attempts are used up."""
    if record.deadline is None or record.deadline > now:
        return []
    ctx = _context(record, session)
    if record.state == SagaState.COMPENSATING:
        _compensate(definition, record, ctx, now)
        return ctx.events
    if record.state != SagaState.RUNNING:
        return []
    step = definition.step(record.step)
    missing = sorted(step.awaits - set(record.received))
    record.note(now, "timed out", attempt=record.attempt, waiting_for=missing)
    if record.attempt >= step.attempts:
        reason = (
            f"step {step.name!r} timed out {record.attempt} times "
            f"waiting for {', '.join(missing) or 'its action'}"
        )
        return fail(definition, record, reason, now, session=session)
    record.attempt += 1
    received = record.received
    _enter(definition, record, step, ctx, now)
    # Replies already in stay counted: the step's action is idempotent and so are its replies.
    record.received = received
    return ctx.events


def retry(
    definition: SagaDefinition, record: SagaRecord, now: datetime, *, session: Any = None
) -> list[Event]:
    """Start a FAILED saga's step again (an operator's `dockyard sagas retry`)."""
    if record.state != SagaState.FAILED:
        raise SagaNotRetryable(f"saga {record.id} is {record.state}, not FAILED")
    record.note(now, "retried", previous_reason=record.reason)
    record.state = SagaState.RUNNING
    record.reason = None
    record.attempt = 1
    # A retry undoes nothing: earlier compensations are forgotten so a new failure runs them.
    record.history = [
        {**entry, "what": "compensation forgotten"} if entry["what"] == "compensated" else entry
        for entry in record.history
    ]
    ctx = _context(record, session)
    _enter(definition, record, definition.step(record.step), ctx, now)
    return ctx.events
