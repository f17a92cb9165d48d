"""Account deletion takes the user's schedules with their tasks, and leaves others' alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.tasks import erasure, firing
from services.tasks.models import Schedule, Task
from services.tasks.tests.schedule_support import (
    TASK_POLICY,
    create,
    policy,
    schedule_database,
    schedule_events,
)

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def schedule_db():
    """A tasks database of this module's own."""
    with schedule_database() as db:
        yield db


def _count(db, model, owner_id: uuid.UUID) -> int:
    with db.uow() as uow:
        return uow.session.scalar(
            select(func.count()).select_from(model).where(model.owner_id == owner_id)
        )


def test_erasing_a_user_deletes_their_schedules_and_the_runs_they_started(schedule_db):
    leaving, staying = uuid.uuid4(), uuid.uuid4()
    theirs = [create(schedule_db, now=T0, interval_seconds=60, owner_id=leaving) for _ in range(2)]
    create(schedule_db, now=T0, interval_seconds=60, owner_id=staying)
    firing.fire_all_due(
        schedule_db.uow, now=T0 + timedelta(minutes=1), policy=policy(), task_policy=TASK_POLICY
    )
    assert _count(schedule_db, Task, leaving) == 2

    with schedule_db.uow() as uow:
        # A PENDING run is cancelled at once, so the erasure completes in one go.
        erasure.erase_user_tasks(uow.session, user_id=str(leaving), saga_id=str(uuid.uuid4()))
        uow.session.commit()

    assert (_count(schedule_db, Schedule, leaving), _count(schedule_db, Task, leaving)) == (0, 0)
    assert (_count(schedule_db, Schedule, staying), _count(schedule_db, Task, staying)) == (1, 1)
    for schedule in theirs:
        assert schedule_events(schedule_db, schedule.id)[-1]["type"] == "ScheduleDeleted"
