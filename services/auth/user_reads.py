"""The one read on every authenticated request: a user by id, as a prepared statement."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import exc
from sqlalchemy.engine import Engine

#: Prepared once per database connection (the pool's record of it remembers that it was).
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
    """Read one user by id on a raw pooled connection of an autocommit engine.

    Through SQLAlchemy's Connection the same SELECT cost more CPU than the database spent on it
    (statement caching, result processing, the Connection itself); here it is one EXECUTE of a
    server-side prepared statement. A connection that turns out dead is dropped with the rest of
    the pool (as SQLAlchemy does on a disconnect) and the read runs once more on a fresh one.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, user_id: uuid.UUID) -> UserRow | None:
        """The user's row, or None."""
        try:
            return self._read(user_id)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        return self._read(user_id)

    def _read(self, user_id: uuid.UUID) -> UserRow | None:
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                if not raw.info.get(_STATEMENT):
                    cursor.execute(_PREPARE)
                    raw.info[_STATEMENT] = True
                cursor.execute(_EXECUTE, (str(user_id),))
                row = cursor.fetchone()
            finally:
                cursor.close()
        except self.engine.dialect.loaded_dbapi.Error as error:
            disconnected = self.engine.dialect.is_disconnect(error, raw.dbapi_connection, None)
            if disconnected:
                raw.invalidate(error)
                # The other pooled connections were opened before this one died: after a
                # database restart they are dead too.
                self.engine.dispose()
            raise exc.DBAPIError.instance(
                _EXECUTE, (str(user_id),), error, self.engine.dialect.loaded_dbapi.Error,
                connection_invalidated=disconnected,
            ) from error  # fmt: skip
        finally:
            raw.close()
        return UserRow(*row) if row is not None else None
