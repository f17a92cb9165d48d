"""The one read on every authenticated request: a user by id, as a prepared statement."""

from __future__ import annotations

import time
import uuid
from collections import deque
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import exc
from sqlalchemy.engine import Engine

from shared.db import PING_AFTER_IDLE_SECONDS

#: Prepared once on each connection this reader opens.
_STATEMENT = "auth_user_by_id"
_PREPARE = (
    f"PREPARE {_STATEMENT} (uuid) AS "
    "SELECT id::text, email, created_at, email_verified FROM users WHERE id = $1"
)
_EXECUTE = f"EXECUTE {_STATEMENT} (%s)"


class UserRow(NamedTuple):
    """The columns of a user that callers may see."""

    id: str
    email: str
    created_at: datetime
    email_verified: bool


class UserById:
    """Read one user by id: one EXECUTE of a server-side prepared statement, no transaction.

    Through SQLAlchemy's Connection the same SELECT cost more CPU than the database spent on it
    (statement caching, result processing, the Connection itself). The reader also keeps its
    own connections (opened by the autocommit `engine`, then detached from its pool) on a
    lock-free stack: the pool's checkout and checkin (locks, reset, events) cost `me` more than
    the EXECUTE's own client-side work, most of all with eight threads waiting on them. The
    stack holds at most as many connections as reads ever ran at once. As the pool would, a
    connection idle longer than `ping_after_idle` is pinged before use; one that turns out dead
    is dropped with every idle one (after a database restart they are all dead) and the read
    runs once more on a fresh connection.
    """

    def __init__(self, engine: Engine, *, ping_after_idle: float = PING_AFTER_IDLE_SECONDS) -> None:
        self.engine = engine
        self.ping_after_idle = ping_after_idle
        #: (DBAPI connection, when it was last used), the most recently used last.
        self._idle: deque[tuple[Any, float]] = deque()

    def __call__(self, user_id: uuid.UUID) -> UserRow | None:
        """The user's row, or None."""
        try:
            return self._read(user_id)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        return self._read(user_id)

    def close(self) -> None:
        """Close the idle connections (those in use close as their reads end)."""
        while self._idle:
            self._close(self._idle.popleft()[0])

    def _read(self, user_id: uuid.UUID) -> UserRow | None:
        connection = self._take()
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            with connection.cursor() as cursor:
                cursor.execute(_EXECUTE, (str(user_id),))
                row = cursor.fetchone()
        except dbapi.Error as error:
            disconnected = self.engine.dialect.is_disconnect(error, connection, None)
            if disconnected:
                self._close(connection)
                self.close()
            else:
                self._give_back(connection)
            raise exc.DBAPIError.instance(
                _EXECUTE, (str(user_id),), error, dbapi.Error, connection_invalidated=disconnected
            ) from error
        self._give_back(connection)
        return UserRow(*row) if row is not None else None

    def _take(self) -> Any:
        """The most recently used idle connection (pinged if idle long), or a new one."""
        while True:
            try:
                connection, last_used = self._idle.pop()
            except IndexError:
                return self._open()
            if time.monotonic() - last_used <= self.ping_after_idle:
                return connection
            try:
                self.engine.dialect.do_ping(connection)
            except self.engine.dialect.loaded_dbapi.Error:
                self._close(connection)
                continue
            return connection

    def _give_back(self, connection: Any) -> None:
        now = time.monotonic()
        self._idle.append((connection, now))
        # Connections opened for a burst of concurrent reads and idle since then are closed.
        try:
            while len(self._idle) > 1 and now - self._idle[0][1] > self.ping_after_idle:
                self._close(self._idle.popleft()[0])
        except IndexError:
            pass  # other threads took the rest meanwhile

    def _open(self) -> Any:
        pooled = self.engine.raw_connection()
        connection = pooled.dbapi_connection
        pooled.detach()
        with connection.cursor() as cursor:
            cursor.execute(_PREPARE)
        return connection

    @staticmethod
    def _close(connection: Any) -> None:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - a dead connection may fail to close politely
            pass
