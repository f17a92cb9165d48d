"""The one read on every authenticated request: a user by id, as a prepared statement."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import exc
from sqlalchemy.engine import Engine

_STATEMENT = "auth_user_by_id"
_PREPARE = (
    f"PREPARE {_STATEMENT} (uuid) AS SELECT id::text, email, created_at FROM users WHERE id = $1"
)
_EXECUTE = f"EXECUTE {_STATEMENT} (%s)"


class UserRow(NamedTuple):
    """The columns of a user that callers may see."""

    id: str
    email: str
    created_at: datetime


class UserById:
    """Read one user by id: an EXECUTE of a prepared statement on this thread's own connection.

    Through SQLAlchemy's Connection the same SELECT cost more CPU than the database spent on
    it, and a pool checkout and check-in per request cost about as much as the EXECUTE. So
    each server thread keeps one connection of the autocommit engine checked out, with the
    statement prepared on it. One that turns out dead (a database restart, an idle timeout)
    is invalidated and the read runs once more on a fresh one.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    def __call__(self, user_id: uuid.UUID) -> UserRow | None:
        """The user's row, or None."""
        try:
            return self._read(user_id)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        return self._read(user_id)

    def backend_pid(self) -> int | None:
        """The server process of this thread's connection, if it has one (diagnostics)."""
        raw = getattr(self._local, "raw", None)
        return raw.dbapi_connection.get_backend_pid() if raw is not None else None

    def _cursor(self):
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute(_PREPARE)
            except BaseException:
                raw.invalidate()
                raw.close()
                raise
            self._local.raw, self._local.cursor = raw, cursor
        return cursor

    def _drop(self, error: BaseException) -> None:
        raw = self._local.raw
        self._local.raw = self._local.cursor = None
        raw.invalidate(error)
        raw.close()

    def _read(self, user_id: uuid.UUID) -> UserRow | None:
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        cursor = self._cursor()
        try:
            cursor.execute(_EXECUTE, (str(user_id),))
            row = cursor.fetchone()
        except dbapi_error as error:
            raw = self._local.raw
            disconnected = self.engine.dialect.is_disconnect(error, raw.dbapi_connection, cursor)
            # Whatever went wrong (its prepared statement gone, say), the next read starts afresh.
            self._drop(error)
            raise exc.DBAPIError.instance(
                _EXECUTE, (str(user_id),), error, dbapi_error,
                connection_invalidated=disconnected,
            ) from error  # fmt: skip
        return UserRow(*row) if row is not None else None
