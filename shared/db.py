"""Database plumbing: per-service engines pinned to one schema, and the unit of work."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from shared.events import Event, current_correlation_id

T = TypeVar("T")

#: A pooled connection idle longer than this is pinged before use: idle connections are the ones
#: a restarted server or a firewall's idle timeout has dropped.
PING_AFTER_IDLE_SECONDS = 10.0


def make_engine(
    url: str,
    *,
    schema: str,
    pool_size: int = 10,
    ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
    **kwargs: Any,
) -> Engine:
    """Create an engine whose connections see only `schema` on their search path.

    Connections are pinged only after `ping_after_idle` seconds in the pool, not on every
    checkout (pre-ping is one more round trip per request). A connection that dies in use raises
    a disconnect error that invalidates every pooled connection opened before it (SQLAlchemy's
    rule), so only the requests in flight see it; reads survive it with `retry_on_disconnect`.
    """
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        connect_args={"options": f"-csearch_path={schema}", "connect_timeout": 5},
        **kwargs,
    )
    _ping_when_idle(engine, after=ping_after_idle)
    return engine


def _ping_when_idle(engine: Engine, *, after: float) -> None:
    @event.listens_for(engine, "checkin")
    def _note_checkin(_dbapi_connection, record) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at <= after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(str(error)) from error


def retry_on_disconnect(read: Callable[[], T], *, attempts: int = 2) -> T:
    """Run a read again when its connection turned out to be dead (the pool is renewed by then).

    Only for work that may run twice: a write whose connection died may have committed.
    """
    for _ in range(attempts - 1):
        try:
            return read()
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
    return read()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker that keeps loaded attributes readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def make_read_engine(url: str, *, schema: str, pool_size: int = 10) -> Engine:
    """An engine for reads that need no transaction: each statement autocommits on its own.

    A lone SELECT then costs one round trip, not three (BEGIN, the SELECT, ROLLBACK at close).
    It has its own pool: switching a pooled connection to autocommit and back costs a round
    trip of its own. Use it only where one statement (or independent ones) answers the question.
    """
    return make_engine(url, schema=schema, pool_size=pool_size, isolation_level="AUTOCOMMIT")


def outbox_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel a service's relay waits on."""
    return f"{schema}_outbox"


class UnitOfWork:
    """One transaction that writes state and the outbox rows of the events it raised."""

    def __init__(self, sessions: Callable[[], Session], *, schema: str, source: str) -> None:
        self._sessions = sessions
        self.schema = schema
        self.source = source
        self.session: Session | None = None
        self._events: list[Event] = []

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self._events = []
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.session is not None
        try:
            self.session.rollback()
        finally:
            self.session.close()
            self.session = None

    def add_event(self, event: Event) -> None:
        """Queue a domain event; it is written to the outbox by commit()."""
        self._events.append(event)

    def flush(self) -> None:
        """Send pending state to the database (to surface constraint errors early)."""
        assert self.session is not None
        self.session.flush()

    def commit(self) -> None:
        """Write the queued events to the outbox and commit everything at once."""
        assert self.session is not None
        if self._events:
            add_events(self.session, self._events, source=self.source, schema=self.schema)
        self.session.commit()
        self._events = []

    def rollback(self) -> None:
        """Discard state and queued events."""
        assert self.session is not None
        self.session.rollback()
        self._events = []


def add_events(session: Session, events: list[Event], *, source: str, schema: str) -> None:
    """Write events to the outbox in `session`'s transaction and wake the relay at commit.

    For code that has a session but no UnitOfWork, such as event handlers raising events.
    """
    write_outbox_rows(session, events, source=source)
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(schema)})


def write_outbox_rows(session: Session, events: list[Event], *, source: str) -> None:
    """Insert events into the outbox, numbering them per aggregate in commit order.

    The sequence upsert row-locks the aggregates' counters until commit (in sorted order, so two
    transactions cannot deadlock on them) before the outbox ids are drawn, so two transactions
    touching one aggregate are numbered (and given outbox ids) in the order they commit. It takes
    two statements, however many events the transaction raised.
    """
    if not events:
        return
    now = datetime.now(UTC)
    correlation_id = current_correlation_id()
    counts = Counter((ev.aggregate_type, ev.aggregate_id) for ev in events)
    keys = sorted(counts)
    upserted = session.execute(
        text(
            "INSERT INTO outbox_sequences AS s (aggregate_type, aggregate_id, last_sequence)"
            " SELECT t, a, n FROM unnest(CAST(:types AS text[]), CAST(:ids AS text[]),"
            " CAST(:counts AS bigint[])) WITH ORDINALITY AS k(t, a, n, ord) ORDER BY ord"
            " ON CONFLICT (aggregate_type, aggregate_id)"
            " DO UPDATE SET last_sequence = s.last_sequence + EXCLUDED.last_sequence"
            " RETURNING aggregate_type, aggregate_id, last_sequence"
        ),
        {
            "types": [key[0] for key in keys],
            "ids": [key[1] for key in keys],
            "counts": [counts[key] for key in keys],
        },
    )
    next_sequence = {}
    for aggregate_type, aggregate_id, last_sequence in upserted:
        key = (aggregate_type, aggregate_id)
        next_sequence[key] = last_sequence - counts[key] + 1
    sequences = []
    for ev in events:
        key = (ev.aggregate_type, ev.aggregate_id)
        sequences.append(next_sequence[key])
        next_sequence[key] += 1
    session.execute(
        text(
            "INSERT INTO outbox (event_id, event_type, event_version, source, aggregate_type,"
            " aggregate_id, sequence, correlation_id, occurred_at, payload)"
            " SELECT e.id, e.type, e.version, :source, e.atype, e.aid, e.seq, :corr, :at, e.payload"
            " FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]), CAST(:versions AS int[]),"
            " CAST(:atypes AS text[]), CAST(:aids AS text[]), CAST(:seqs AS bigint[]),"
            " CAST(:payloads AS jsonb[]))"
            " WITH ORDINALITY AS e(id, type, version, atype, aid, seq, payload, ord) ORDER BY ord"
        ),
        {
            "ids": [str(uuid.uuid4()) for _ in events],
            "types": [ev.event_type() for ev in events],
            "versions": [ev.version for ev in events],
            "atypes": [ev.aggregate_type for ev in events],
            "aids": [ev.aggregate_id for ev in events],
            "seqs": sequences,
            "payloads": [json.dumps(ev.payload(), default=str) for ev in events],
            "source": source,
            "corr": correlation_id,
            "at": now,
        },
    )


def database_name(url: str) -> str:
    """The database a SQLAlchemy URL points at."""
    return make_url(url).database or ""


def on_connect_set_timeouts(engine: Engine, *, statement_timeout_ms: int = 30_000) -> None:
    """Bound every statement so a stuck query cannot hold a worker forever."""

    @event.listens_for(engine, "connect")
    def _set_timeouts(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")


#: Constraint names every service's metadata uses, so migrations are deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class NestedUnitOfWork(UnitOfWork):
    """A unit of work inside another's open transaction, as a savepoint.

    For a use case that must commit together with its caller's (a scheduler's fire row and the
    task it creates): `commit()` releases the savepoint and hands the queued events to the outer
    unit, which writes them when it commits; leaving without a commit rolls back to the
    savepoint (the outer transaction goes on); nothing is committed until the outer unit commits.
    """

    def __init__(self, outer: UnitOfWork) -> None:
        super().__init__(lambda: outer.session, schema=outer.schema, source=outer.source)
        self._outer = outer
        self._savepoint: Any = None

    def __enter__(self) -> NestedUnitOfWork:
        assert self._outer.session is not None, "the outer unit of work is not open"
        self.session = self._outer.session
        self._events = []
        self._savepoint = self.session.begin_nested()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._savepoint is not None and self._savepoint.is_active:
            self._savepoint.rollback()
        self._savepoint = None
        self._events = []
        self.session = None

    def commit(self) -> None:
        """Release the savepoint and pass the queued events to the outer unit of work."""
        assert self._savepoint is not None
        self._savepoint.commit()
        for queued in self._events:
            self._outer.add_event(queued)
        self._events = []

    def rollback(self) -> None:
        """Roll back to the savepoint and discard the queued events."""
        if self._savepoint is not None and self._savepoint.is_active:
            self._savepoint.rollback()
        self._events = []
