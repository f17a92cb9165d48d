"""A PostgreSQL LISTEN connection: wait for a NOTIFY on one channel, or until a timeout passes.

Processes that would otherwise poll (the launcher's slot waits, the monitor's cancels, the
scheduler's sleep) block here instead; the poll they keep is only a safety net.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine


class ChannelListener:
    """One listening connection on `channel`, opened on first use (and again after `close`)."""

    def __init__(self, database: Engine, channel: str) -> None:
        self.database = database
        self.channel = channel
        self._connection: Any = None

    def _listening(self) -> Any:
        if self._connection is None:
            pooled = self.database.raw_connection()
            # It listens for as long as the process lives: take it out of the pool.
            connection = pooled.driver_connection
            pooled.detach()
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'LISTEN "{self.channel}"')
            self._connection = connection
        return self._connection

    def forget(self) -> None:
        """Drop what was signalled so far: call before looking, then `wait` if need be.

        A signal sent between the look and the wait stays pending, so nothing is missed.
        """
        connection = self._listening()
        connection.poll()
        connection.notifies.clear()

    def wait(self, timeout: float, *, also: Sequence[Any] = ()) -> bool:
        """Block until the channel is signalled (True), `timeout` passes or `also` is readable."""
        return bool(self.receive(timeout, also=also))

    def receive(self, timeout: float, *, also: Sequence[Any] = ()) -> list[str]:
        """The payloads signalled since the last call, waiting up to `timeout` s for the first.

        `also`: other file descriptors (a stop signal's) that end the wait early.
        """
        connection = self._listening()
        connection.poll()
        if not connection.notifies:
            if timeout <= 0:
                return []
            readable, _, _ = select.select([connection, *also], [], [], timeout)
            if connection not in readable:
                return []
            connection.poll()
        payloads = [notify.payload for notify in connection.notifies]
        connection.notifies.clear()
        return payloads

    def close(self) -> None:
        """Close the listening connection (it is opened again on the next use)."""
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
