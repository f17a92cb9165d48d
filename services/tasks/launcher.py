"""Starting a task's attempt: claim a slot, run its container, record it RUNNING.

No Celery here: worker.py's start job calls `start_attempt`, and waits for a free slot with a
`Listener` on transitions.SLOT_FREED_CHANNEL (which the steps that free a slot notify) rather
than a sleep.
"""

from __future__ import annotations

import select
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine as DatabaseEngine

from services.tasks import transitions
from services.tasks.containers import ContainerEngine, TaskRejected
from shared.db import UnitOfWork


def start_attempt(
    uow: Callable[[], UnitOfWork],
    *,
    task_id: uuid.UUID,
    engine: ContainerEngine,
    settings: transitions.ExecutionSettings,
) -> str:
    """Start the task's current attempt; idempotent. Returns started, busy, done or failed.

    Raises EngineUnavailable for the caller to retry with backoff.
    """
    claim = transitions.claim_attempt(uow(), task_id=task_id, settings=settings)
    if claim.outcome != "start":
        return claim.outcome
    try:
        container = engine.run(claim.spec)
    except TaskRejected as exc:
        transitions.fail_start(uow(), task_id=task_id, code=exc.code, message=str(exc))
        return "failed"
    started_at = container.started_at(datetime.now(UTC))
    if transitions.mark_running(uow(), task_id=task_id, container=container, started_at=started_at):
        return "started"
    engine.remove(container.name)
    return "done"


class Listener:
    """Waits for a PostgreSQL NOTIFY on one channel, or until a timeout passes."""

    def __init__(self, database: DatabaseEngine, channel: str) -> None:
        self.database = database
        self.channel = channel
        self._connection: Any = None

    def _listener(self) -> Any:
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
        connection = self._listener()
        connection.poll()
        connection.notifies.clear()

    def wait(self, timeout: float) -> bool:
        """Block until the channel is signalled (True) or `timeout` seconds pass (False)."""
        return bool(self.receive(timeout))

    def receive(self, timeout: float) -> list[str]:
        """The payloads signalled since the last call, waiting up to `timeout` s for the first."""
        connection = self._listener()
        connection.poll()
        if not connection.notifies:
            readable, _, _ = select.select([connection], [], [], timeout)
            if not readable:
                return []
            connection.poll()
        payloads = [notify.payload for notify in connection.notifies]
        connection.notifies.clear()
        return payloads

    def close(self) -> None:
        """Close the listening connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
