"""A service's replica of the users auth owns, kept from auth's events and from verified tokens.

Files and tasks must not ask auth synchronously whether a user exists, so each keeps a `users`
table in its own schema:

    id             auth's user id (the access token's `sub`)
    registered_at  when auth registered the user; NULL until UserRegistered has arrived
    first_seen_at  when this service first heard of the user (an event or a request)
    deleted_at     set by UserDeleted and never cleared
    email          (tasks only, `with_email=True`) the address UserRegistered carried, for mail
                   the service sends its users (notifications)

Every write is an upsert that only fills columns still NULL, so the events may come twice and in
any order: a UserDeleted handled before its UserRegistered leaves the user deleted.

A request can come before the replica: register, then upload at once, while UserRegistered is
still on its way. A verified, unrevoked access token proves the user exists (auth signs tokens
only for users it has), so the first request inserts the row itself (ON CONFLICT DO NOTHING) and
the event confirms it later. A deleted row refuses its user with 401 even while one of their
tokens is still valid: the deny-list is a cache that expires with the tokens, the replica is
this service's durable record.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from datetime import datetime

from flask import Flask
from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    literal_column,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shared.auth import TokenInvalid, TokenSubjectInvalid
from shared.events import Envelope

log = logging.getLogger(__name__)

#: The routing keys a replica follows.
USER_EVENTS = ("auth.UserRegistered", "auth.UserDeleted")
#: How long a user seen alive is admitted without asking the database again. A deletion takes
#: effect on a service's replica after at most this long (auth revokes the tokens at once).
ALIVE_CACHE_SECONDS = 5.0
ALIVE_CACHE_ENTRIES = 10_000


class AccountDeleted(TokenInvalid):
    """The token is valid, but this service's replica says its user was deleted."""

    public_message = "This account has been deleted."


def add_user_replica_table(metadata: MetaData, *, with_email: bool = False) -> Table:
    """Declare the `users` replica on a service's metadata (so its migrations create it)."""
    extra = [Column("email", String(320))] if with_email else []
    return Table(
        "users",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("registered_at", DateTime(timezone=True)),
        Column("first_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("deleted_at", DateTime(timezone=True)),
        *extra,
    )


def _fill(users: Table, column: str, *, user_id: uuid.UUID, at: datetime):
    statement = insert(users).values({"id": user_id, column: at})
    return statement.on_conflict_do_update(
        index_elements=[users.c.id],
        set_={column: func.coalesce(users.c[column], statement.excluded[column])},
    )


def record_user_registered(
    session: Session, users: Table, *, user_id: uuid.UUID, registered_at: datetime
) -> None:
    """Create or confirm a user's row; a deletion already recorded stays."""
    session.execute(_fill(users, "registered_at", user_id=user_id, at=registered_at))


def record_user_deleted(
    session: Session, users: Table, *, user_id: uuid.UUID, deleted_at: datetime
) -> None:
    """Mark a user deleted, creating the row if the registration has not arrived yet."""
    session.execute(_fill(users, "deleted_at", user_id=user_id, at=deleted_at))


def apply_user_event(session: Session, users: Table, envelope: Envelope) -> None:
    """Apply one of USER_EVENTS to the replica, in the consumer's inbox transaction."""
    user_id = uuid.UUID(envelope.payload["user_id"])
    if envelope.type == "UserRegistered":
        record_user_registered(session, users, user_id=user_id, registered_at=envelope.occurred)
        email = envelope.payload.get("email")
        if "email" in users.c and email:
            session.execute(update(users).where(users.c.id == user_id).values(email=email))
    elif envelope.type == "UserDeleted":
        record_user_deleted(session, users, user_id=user_id, deleted_at=envelope.occurred)
    else:
        raise ValueError(f"not a user event: {envelope.routing_key}")


class UserGate:
    """Admits a verified caller if the replica does not say they were deleted (see module doc)."""

    def __init__(
        self,
        engine: Engine,
        users: Table,
        *,
        cache_seconds: float = ALIVE_CACHE_SECONDS,
        cache_entries: int = ALIVE_CACHE_ENTRIES,
    ) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self.cache_entries = cache_entries
        self._alive: OrderedDict[uuid.UUID, float] = OrderedDict()
        self._lock = threading.Lock()
        # One round trip: the insert's RETURNING is empty when the row exists, and the second
        # branch, reading the statement's snapshot, sees only a row that existed before.
        table = f'"{users.schema}"."{users.name}"' if users.schema else f'"{users.name}"'
        self._admit = text(
            f"WITH created AS (INSERT INTO {table} (id) VALUES (:id) "
            "ON CONFLICT (id) DO NOTHING RETURNING deleted_at) "
            f"SELECT deleted_at FROM created UNION ALL SELECT deleted_at FROM {table} "
            "WHERE id = :id"
        ).columns(literal_column("deleted_at"))

    def admit(self, subject: str) -> None:
        """Let `subject` (a verified token's `sub`) in, or raise AccountDeleted (401)."""
        try:
            user_id = uuid.UUID(subject)
        except ValueError:
            raise TokenSubjectInvalid("token's subject is not a user id") from None
        now = time.monotonic()
        with self._lock:
            seen = self._alive.get(user_id)
            if seen is not None and now - seen < self.cache_seconds:
                return
        with self.engine.begin() as connection:
            deleted_at = connection.execute(self._admit, {"id": user_id}).scalar()
        if deleted_at is not None:
            with self._lock:
                self._alive.pop(user_id, None)
            raise AccountDeleted(f"user {user_id} was deleted at {deleted_at.isoformat()}")
        with self._lock:
            self._alive[user_id] = now
            self._alive.move_to_end(user_id)
            while len(self._alive) > self.cache_entries:
                self._alive.popitem(last=False)


def init_user_replica(app: Flask, engine: Engine, users: Table, **options: float) -> UserGate:
    """Make every `authenticated` view of `app` admit its caller through the replica first."""
    gate = UserGate(engine, users, **options)
    app.extensions["caller_gate"] = gate.admit
    return gate
