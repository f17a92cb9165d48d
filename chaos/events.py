"""A stream of real events with real consumers, written to auth's outbox as units of work write.

Each event is an `auth.UserRegistered` of a made-up user: the files and tasks user replicas
(subscriptions `files.users` and `tasks.users`) consume it through their inboxes, and applying
it twice is harmless (an upsert). So every event's fate can be read back: it reached a consumer
when that consumer's inbox holds its id, and each aggregate's order held when the consumer's
inbox position reached the last sequence without an out-of-order note.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from chaos.checks import Database
from shared.db import outbox_channel

#: The subscriptions that consume the stream, by the schema whose inbox they write.
CONSUMERS = {"files": "files.users", "tasks": "tasks.users"}
INSERT = (
    "INSERT INTO auth.outbox (event_id, event_type, event_version, source, aggregate_type,"
    " aggregate_id, sequence, occurred_at, payload)"
    " SELECT gen_random_uuid(), 'UserRegistered', 1, 'auth', 'user', u, %s, now(),"
    " jsonb_build_object('user_id', u, 'email', 'chaos-' || left(u, 8) || '@example.com')"
    " FROM unnest(%s::text[]) AS u RETURNING event_id::text"
)


@dataclass
class EventStream:
    """`aggregates` made-up users × `per_aggregate` events each, committed in sequence order.

    Events go out in transactions of at most `batch` (one sequence number of many aggregates
    each), `pause` seconds apart, from a background thread.
    """

    db: Database
    aggregates: int
    per_aggregate: int = 1
    batch: int = 1000
    pause: float = 0.05
    users: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    @property
    def total(self) -> int:
        """How many events the stream writes."""
        return self.aggregates * self.per_aggregate

    def start(self) -> None:
        """Start writing in the background."""
        self.users = [str(uuid.uuid4()) for _ in range(self.aggregates)]
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait until every event was written."""
        assert self._thread is not None
        self._thread.join(timeout)

    def _write(self) -> None:
        notify = f"SELECT pg_notify('{outbox_channel('auth')}', '')"
        for sequence in range(1, self.per_aggregate + 1):
            for start in range(0, self.aggregates, self.batch):
                chunk = self.users[start : start + self.batch]
                # A database restart may cut a commit: try that batch again, as a service would.
                while True:
                    try:
                        ids = self.db.returning(INSERT, (sequence, chunk), notify)
                        break
                    except Exception as exc:  # noqa: BLE001 - retried; the last one reported
                        self.errors.append(repr(exc))
                        time.sleep(0.5)
                self.event_ids += ids
                time.sleep(self.pause)

    def consumed(self) -> int:
        """Events that reached both consumers (each inbox counted; at most `total`)."""
        if len(self.event_ids) < self.total:
            return 0
        counts = [
            self.db.rows(
                f"SELECT count(*) FROM {schema}.inbox i JOIN unnest(%s::uuid[]) AS e(id)"
                " ON i.message_id = e.id WHERE i.consumer = %s",
                (self.event_ids, consumer),
            )
            for schema, consumer in CONSUMERS.items()
        ]
        if not all(counts):
            return 0
        return min(found[0][0] for found in counts)

    def out_of_order(self) -> int:
        """Aggregates whose last position is not the last sequence, or that noted a reordering."""
        bad = 0
        for schema, consumer in CONSUMERS.items():
            rows = self.db.rows(
                f"SELECT count(*) FROM {schema}.inbox_positions p"
                " JOIN unnest(%s::text[]) AS u(id) ON p.aggregate_id = u.id"
                " WHERE p.consumer = %s AND p.aggregate_type = 'user'"
                " AND (p.last_sequence <> %s OR p.note IS NOT NULL)",
                (self.users, consumer, self.per_aggregate),
            )
            bad += rows[0][0] if rows else 0
        return bad
