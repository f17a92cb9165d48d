"""Test support for schedules: a database of their own, a controllable clock, what fired."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select, text

from services.tasks import schedules
from services.tasks.models import SCHEMA, ScheduleFire, Task
from services.tasks.schedules import SchedulePolicy
from services.tasks.service import TaskPolicy
from services.tasks.tests.engine.conftest import own_environment
from shared.db import UnitOfWork, make_engine, session_factory

#: The operator's task policy in these tests (the defaults of TasksSettings).
TASK_POLICY = TaskPolicy(
    max_timeout_seconds=3600,
    default_timeout_seconds=900,
    max_cpu=4.0,
    default_cpu=1.0,
    max_memory_mb=4096,
    default_memory_mb=512,
    max_retries=5,
    default_retries=0,
    max_active_tasks_per_user=100,
)
#: What each run of a schedule is created from.
TASK = {"name": "tick", "image": "busybox:1.36", "command": ["true"]}


class Clock:
    """A clock the test moves; every scheduler sharing it sees the same time."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def set(self, now: datetime) -> None:
        """Move the clock to `now`."""
        with self._lock:
            self.now = now


@dataclass(frozen=True)
class ScheduleDatabase:
    """A tasks database of the module's own: no other test's schedules fire in it."""

    url: str
    uow: Callable[[], UnitOfWork]


@contextmanager
def schedule_database() -> Iterator[ScheduleDatabase]:
    """A migrated tasks database of its own, dropped after the block."""
    with own_environment() as environment:
        url = environment.service_url("tasks")
        engine = make_engine(url, schema=SCHEMA, pool_size=4)
        try:
            yield ScheduleDatabase(
                url, partial(UnitOfWork, session_factory(engine), schema=SCHEMA, source="tasks")
            )
        finally:
            engine.dispose()


def policy(**overrides: Any) -> SchedulePolicy:
    """A schedule policy: the defaults of TasksSettings, with `overrides`."""
    values = {
        "max_per_user": 1000,
        "min_interval_seconds": 60,
        "misfire_grace_seconds": 60.0,
        "catch_up_max": 10,
    }
    return SchedulePolicy(**{**values, **overrides})


def create(
    db: ScheduleDatabase,
    *,
    now: datetime,
    owner_id: uuid.UUID | None = None,
    schedule_policy: SchedulePolicy | None = None,
    task: dict | None = None,
    **kwargs: Any,
) -> schedules.ScheduleView:
    """Create a schedule as of `now` (a fresh owner unless one is given)."""
    return schedules.create_schedule(
        db.uow(),
        policy=schedule_policy or policy(),
        task_policy=TASK_POLICY,
        owner_id=owner_id or uuid.uuid4(),
        task=task or TASK,
        now=now,
        **kwargs,
    )


@dataclass(frozen=True)
class Fire:
    """One recorded fire time and what became of it."""

    fire_time: datetime
    outcome: str
    task_id: uuid.UUID | None
    detail: str | None


def fires(db: ScheduleDatabase, schedule_id: str) -> list[Fire]:
    """The schedule's recorded fire times, oldest first."""
    with db.uow() as uow:
        rows = uow.session.execute(
            select(ScheduleFire)
            .where(ScheduleFire.schedule_id == uuid.UUID(schedule_id))
            .order_by(ScheduleFire.fire_time)
        ).scalars()
        return [Fire(r.fire_time, r.outcome, r.task_id, r.detail) for r in rows]


@dataclass(frozen=True)
class Run:
    """A task a schedule started, as it is now."""

    id: uuid.UUID
    owner_id: uuid.UUID
    status: str
    name: str | None
    image: str
    timeout_seconds: int
    memory_limit_mb: int
    cancel_requested_at: datetime | None


def runs(db: ScheduleDatabase, schedule_id: str) -> list[Run]:
    """The tasks the schedule started, oldest first."""
    with db.uow() as uow:
        tasks = uow.session.scalars(
            select(Task)
            .where(Task.schedule_id == uuid.UUID(schedule_id))
            .order_by(Task.created_at, Task.id)
        )
        return [
            Run(
                t.id,
                t.owner_id,
                t.status,
                t.name,
                t.image,
                t.timeout_seconds,
                t.memory_limit_mb,
                t.cancel_requested_at,
            )
            for t in tasks
        ]


def schedule_events(db: ScheduleDatabase, schedule_id: str) -> list[dict[str, Any]]:
    """The outbox rows of one schedule, in sequence order: [{"type": ..., "payload": ...}]."""
    with db.uow() as uow:
        rows = uow.session.execute(
            text(
                "SELECT event_type, payload FROM outbox"
                " WHERE aggregate_type = 'schedule' AND aggregate_id = :id ORDER BY sequence"
            ),
            {"id": schedule_id},
        ).all()
    return [{"type": row.event_type, "payload": row.payload} for row in rows]
