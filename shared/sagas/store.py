"""Sagas in the orchestrator's schema: start, advance by event or timeout, list, retry.

Every change loads the saga's row `FOR UPDATE`, runs the machine (machine.py) and writes the
row and the events the steps raised (to the outbox) in the caller's transaction, so a crash
anywhere leaves either the old state or the new one, never half of each. Replies reach
`handle_reply` through a consumer subscription (`subscription()`), deadlines through `sweep`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shared.db import add_events, session_factory
from shared.events import Envelope
from shared.sagas import machine
from shared.sagas.machine import LIVE, SagaDefinition, SagaRecord, SagaState

log = logging.getLogger(__name__)


class SagaNotFound(Exception):
    """No saga has that id."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Sagas:
    """The sagas one service orchestrates: its table, its definitions and its outbox identity."""

    table: Table
    definitions: tuple[SagaDefinition, ...]
    source: str

    @property
    def schema(self) -> str:
        """The orchestrating service's schema (its outbox is there too)."""
        return self.table.schema or self.source

    def definition(self, kind: str) -> SagaDefinition:
        """The definition of `kind`; KeyError otherwise."""
        for definition in self.definitions:
            if definition.kind == kind:
                return definition
        raise KeyError(f"no saga kind {kind!r}")

    # -- reading and writing rows ---------------------------------------------------------

    def _record(self, row: Any) -> SagaRecord:
        return SagaRecord(
            id=str(row.id),
            kind=row.kind,
            subject=row.subject,
            state=SagaState(row.state),
            step=row.step,
            attempt=row.attempt,
            data=dict(row.data),
            received=list(row.received),
            history=list(row.history),
            deadline=row.deadline,
            reason=row.reason,
        )

    def _lock(self, session: Session, saga_id: str) -> SagaRecord | None:
        try:
            key = uuid.UUID(str(saga_id))
        except ValueError:
            return None
        row = session.execute(
            select(self.table).where(self.table.c.id == key).with_for_update()
        ).one_or_none()
        return self._record(row) if row is not None else None

    def _save(self, session: Session, record: SagaRecord, events: list) -> None:
        session.execute(
            update(self.table)
            .where(self.table.c.id == uuid.UUID(record.id))
            .values(
                state=record.state.value,
                step=record.step,
                attempt=record.attempt,
                received=record.received,
                history=record.history,
                deadline=record.deadline,
                reason=record.reason,
                updated_at=func.now(),
            )
        )
        if events:
            add_events(session, events, source=self.source, schema=self.schema)

    # -- use cases -----------------------------------------------------------------------

    def start(
        self, session: Session, *, kind: str, subject: str, data: dict[str, Any]
    ) -> SagaRecord:
        """Start a saga of `kind` about `subject`, unless one is already live: return that one.

        A FAILED one is started again (as a retry) rather than a second one begun.
        """
        definition = self.definition(kind)
        # Serialises two starts for one subject (a double click) without a unique index.
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"saga:{kind}:{subject}"))))
        existing = session.execute(
            select(self.table.c.id)
            .where(
                self.table.c.kind == kind,
                self.table.c.subject == subject,
                self.table.c.state.in_([*LIVE, SagaState.FAILED]),
            )
            .order_by(self.table.c.created_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        now = _now()
        if existing is not None:
            record = self._lock(session, str(existing))
            if record.state == SagaState.FAILED:
                self._save(session, record, machine.retry(definition, record, now, session=session))
            return record
        record = SagaRecord(
            id=str(uuid.uuid4()),
            kind=kind,
            subject=subject,
            state=SagaState.RUNNING,
            step=definition.steps[0].name,
            data=data,
        )
        session.execute(
            insert(self.table).values(
                id=uuid.UUID(record.id),
                kind=kind,
                subject=subject,
                state=record.state.value,
                step=record.step,
                data=data,
            )
        )
        events = machine.start(definition, record, now, session=session)
        self._save(session, record, events)
        log.info("saga started", extra={"saga_id": record.id, "kind": kind})
        return record

    def handle_reply(self, envelope: Envelope, session: Session) -> None:
        """Advance the saga a reply names (payload `saga_id`); others' replies are ignored."""
        saga_id = envelope.payload.get("saga_id")
        record = self._lock(session, saga_id) if saga_id else None
        if record is None:
            log.info("reply %s names no saga of ours", envelope.routing_key)
            return
        definition = self.definition(record.kind)
        events = machine.on_event(
            definition, record, envelope.routing_key, envelope.payload, _now(), session=session
        )
        self._save(session, record, events)
        if record.state in (SagaState.SUCCEEDED, SagaState.FAILED):
            log.info("saga %s", record.state.value.lower(), extra={"saga_id": record.id})

    def subscription(self, name: str, **options: Any):
        """The consumer subscription that feeds every awaited reply to `handle_reply`."""
        from shared.messaging.consumer import Subscription

        keys: set[str] = set()
        for definition in self.definitions:
            keys |= definition.routing_keys
        return Subscription(name, sorted(keys), self.handle_reply, **options)

    def sweep(self, engine: Engine, *, limit: int = 100) -> list[str]:
        """Apply every deadline that has passed, one saga per transaction; return their ids.

        `SKIP LOCKED` lets several sweepers (or a reply being handled) share the table.
        """
        swept: list[str] = []
        sessions = session_factory(engine)
        # Only the kinds defined here: a row of a kind this process does not know (another
        # version's, a retired one's) must not stop the sweep of every saga behind it.
        kinds = [definition.kind for definition in self.definitions]
        for _ in range(limit):
            with sessions() as session, session.begin():
                row = session.execute(
                    select(self.table)
                    .where(
                        self.table.c.state.in_(LIVE),
                        self.table.c.kind.in_(kinds),
                        self.table.c.deadline <= func.now(),
                    )
                    .order_by(self.table.c.deadline)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).one_or_none()
                if row is None:
                    break
                record = self._record(row)
                definition = self.definition(record.kind)
                try:
                    events = machine.on_timeout(definition, record, _now(), session=session)
                except Exception as exc:  # noqa: BLE001 - a broken step must not stop the sweep
                    log.exception("saga step failed on timeout", extra={"saga_id": record.id})
                    events = machine.fail(
                        definition, record, f"step {record.step!r} raised {exc!r}", _now()
                    )
                self._save(session, record, events)
                swept.append(record.id)
        return swept

    def retry(self, session: Session, saga_id: str) -> SagaRecord:
        """Start a FAILED saga's step again; SagaNotFound, machine.SagaNotRetryable."""
        record = self._lock(session, saga_id)
        if record is None:
            raise SagaNotFound(saga_id)
        events = machine.retry(self.definition(record.kind), record, _now(), session=session)
        self._save(session, record, events)
        return record

    def get(self, session: Session, saga_id: str) -> SagaRecord:
        """One saga; SagaNotFound otherwise."""
        try:
            key = uuid.UUID(str(saga_id))
        except ValueError:
            raise SagaNotFound(saga_id) from None
        row = session.execute(select(self.table).where(self.table.c.id == key)).one_or_none()
        if row is None:
            raise SagaNotFound(saga_id)
        return self._record(row)

    def list(
        self, session: Session, *, states: Sequence[str] = (), limit: int = 50
    ) -> list[tuple[SagaRecord, datetime]]:
        """The newest sagas (optionally in `states`), each with its last change time."""
        query = select(self.table).order_by(self.table.c.updated_at.desc()).limit(limit)
        if states:
            query = query.where(self.table.c.state.in_(list(states)))
        return [(self._record(row), row.updated_at) for row in session.execute(query)]

    def counts(self, session: Session) -> dict[str, int]:
        """How many sagas are in each state (every state present, 0 when none)."""
        rows = session.execute(
            select(self.table.c.state, func.count()).group_by(self.table.c.state)
        ).all()
        counts = {state.value: 0 for state in SagaState}
        counts.update({state: count for state, count in rows})
        return counts
