"""Firing due schedules: exactly once per (schedule, fire time), whatever runs at once.

`fire_next_due` handles one due schedule in one transaction. It takes the schedule's row with
`FOR UPDATE SKIP LOCKED`, so schedulers running side by side each take a different due schedule
and never wait on each other; it records each fire time it handles in `schedule_fires`, whose
primary key (schedule_id, fire_time) refuses a second record of the same fire time even if two
schedulers ever disagreed about the clock; and it creates the run through `service.create_task`
inside that same transaction (a savepoint of it), so the run's TaskCreated event, which the
launcher starts it from, commits with the fire row and the schedule's next fire time. A
scheduler killed at any moment leaves either all of that or none of it: the next scheduler to
look fires the same fire time again, once.

Fire times a scheduler reaches more than the misfire grace late were missed (the schedulers were
down); the schedule's misfire policy decides: SKIP runs none of them, RUN_ONCE runs the latest
one, RUN_ALL runs the latest `catch_up_max`. One ScheduleMisfired event sums up what was not
run. A fire time reached within the grace always runs (subject to the overlap policy).

Overlap, when the schedule's previous run has not finished: ALLOW starts the new run anyway;
SKIP records the fire time SKIPPED (a ScheduleFireSkipped event says so); CANCEL_PREVIOUS
cancels every unfinished run through `service.cancel_task` (the owner's own cancel path) and
starts the new one. In a RUN_ALL catch-up the runs started by the same catch-up count as
previous runs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert

from services.tasks import dependencies, service, workflows
from services.tasks.events import ScheduleFired, ScheduleFireSkipped, ScheduleMisfired
from services.tasks.lifecycle import TERMINAL
from services.tasks.models import (
    FireOutcome,
    MisfirePolicy,
    OverlapPolicy,
    Schedule,
    ScheduleFire,
    Task,
    TaskStatus,
    Workflow,
)
from services.tasks.schedules import SCHEDULES_CHANGED_CHANNEL, SchedulePolicy, recurrence_of
from services.tasks.service import TaskPolicy
from shared.db import NestedUnitOfWork, UnitOfWork

log = logging.getLogger(__name__)

#: Most missed fire times counted in one catch-up (a one-minute schedule down for a week would
#: otherwise be ten thousand croniter steps); the event then says "at least" this many.
MAX_COUNTED = 10_000
_UNFINISHED = [status for status in TaskStatus if status not in TERMINAL]


@dataclass(frozen=True)
class Firing:
    """What one pass over a due schedule did."""

    schedule_id: uuid.UUID
    #: Fire times that created a run, in order.
    started: list[datetime]
    #: Fire times recorded but not run (overlap, or the task refused).
    skipped: list[datetime]
    #: Late fire times the misfire policy did not run.
    missed: int
    #: Firing it raised: nothing of it was committed, and the other due schedules go on.
    failed: bool = False


def _due(schedule: Schedule, now: datetime) -> list[datetime]:
    """The schedule's fire times from `next_fire_at` up to `now` (at most MAX_COUNTED), in UTC.

    UTC because Python compares two datetimes of one zone by wall-clock time: the two 02:30s of
    an autumn night would be equal.
    """
    first = schedule.next_fire_at
    assert first is not None
    due = [first.astimezone(UTC)]
    for fire in recurrence_of(schedule).fire_times_after(first):
        fire = fire.astimezone(UTC)
        if fire > now or len(due) >= MAX_COUNTED:
            break
        due.append(fire)
    return due


def runs_for(
    due: list[datetime], *, now: datetime, misfire_policy: str, policy: SchedulePolicy
) -> list[datetime]:
    """Which of the due fire times run, by the misfire policy (those within the grace always)."""
    grace = timedelta(seconds=policy.misfire_grace_seconds)
    on_time = [fire for fire in due if now - fire <= grace]
    if len(on_time) == len(due):
        return due
    if misfire_policy == MisfirePolicy.RUN_ONCE:
        return due[-1:]
    if misfire_policy == MisfirePolicy.RUN_ALL:
        return due[-max(policy.catch_up_max, len(on_time)) :]
    return on_time


def fire_next_due(
    uow: UnitOfWork,
    *,
    now: datetime,
    policy: SchedulePolicy,
    task_policy: TaskPolicy,
    skip: Collection[uuid.UUID] = (),
) -> Firing | None:
    """Handle every fire time due by `now` of one due schedule nobody else holds; None if none.

    Schedules in `skip` are left alone (they failed lately). A schedule whose firing raises is
    rolled back and returned `failed`, so that one broken schedule does not stop every other.
    """
    now = now.astimezone(UTC)
    with uow:
        query = select(Schedule).where(Schedule.paused.is_(False), Schedule.next_fire_at <= now)
        if skip:
            query = query.where(Schedule.id.not_in(list(skip)))
        schedule = uow.session.scalar(
            query.order_by(Schedule.next_fire_at).limit(1).with_for_update(skip_locked=True)
        )
        if schedule is None:
            return None
        schedule_id = schedule.id
        try:
            return _fire_schedule(uow, schedule, now, policy, task_policy)
        except Exception:
            log.exception("firing schedule %s failed; it is tried again later", schedule_id)
            return Firing(schedule_id, [], [], 0, failed=True)


def _fire_schedule(
    uow: UnitOfWork,
    schedule: Schedule,
    now: datetime,
    policy: SchedulePolicy,
    task_policy: TaskPolicy,
) -> Firing:
    """Handle the locked schedule's due fire times, and commit."""
    due = _due(schedule, now)
    runs = runs_for(due, now=now, misfire_policy=schedule.misfire_policy, policy=policy)
    missed = [fire for fire in due if fire not in runs]
    if missed:
        uow.add_event(
            ScheduleMisfired(
                schedule_id=str(schedule.id),
                owner_id=str(schedule.owner_id),
                misfire_policy=schedule.misfire_policy,
                missed=len(missed),
                first_missed_at=missed[0].isoformat(),
                last_missed_at=missed[-1].isoformat(),
                ran=len(runs),
            )
        )
    started, skipped = [], []
    for fire_time in runs:
        outcome = _fire(uow, schedule, fire_time, task_policy)
        if outcome == FireOutcome.STARTED:
            started.append(fire_time)
        elif outcome is not None:
            skipped.append(fire_time)
    schedule.last_fire_at = due[-1]
    schedule.next_fire_at = recurrence_of(schedule).next_after(max(due[-1], now))
    # Other schedulers may be waiting for this row's fire to commit: they look again now.
    uow.session.execute(
        text("SELECT pg_notify(:channel, :id)"),
        {"channel": SCHEDULES_CHANGED_CHANNEL, "id": str(schedule.id)},
    )
    uow.commit()
    return Firing(schedule.id, started, skipped, len(missed))


def _fire(
    uow: UnitOfWork, schedule: Schedule, fire_time: datetime, task_policy: TaskPolicy
) -> FireOutcome | None:
    """Run one fire time (None: it was handled before, by whoever recorded it)."""
    recorded = uow.session.execute(
        insert(ScheduleFire)
        .values(schedule_id=schedule.id, fire_time=fire_time, outcome=FireOutcome.STARTED)
        .on_conflict_do_nothing()
        .returning(ScheduleFire.fire_time)
    ).first()
    if recorded is None:
        return None
    fire = uow.session.get(ScheduleFire, (schedule.id, fire_time))
    previous = _unfinished_runs(uow, schedule.id)
    if previous and schedule.overlap_policy == OverlapPolicy.SKIP:
        detail = f"The previous run {previous[-1].id} is still going."
        return _skip(uow, schedule, fire, FireOutcome.SKIPPED, "OVERLAP", detail)
    if previous and schedule.overlap_policy == OverlapPolicy.CANCEL_PREVIOUS:
        for run in previous:
            _cancel_run(uow, schedule.owner_id, run)
    try:
        run = _start_run(uow, schedule, task_policy)
    except (
        service.PolicyViolation,
        service.ActiveTaskLimitReached,
        dependencies.UnknownDependency,
        workflows.InvalidWorkflow,
    ) as exc:
        return _skip(uow, schedule, fire, FireOutcome.REFUSED, "TASK_REFUSED", str(exc))
    task = uow.session.get(Task, uuid.UUID(run.id))
    task.schedule_id = schedule.id
    fire.task_id = task.id
    uow.add_event(
        ScheduleFired(
            schedule_id=str(schedule.id),
            owner_id=str(schedule.owner_id),
            fire_time=fire_time.isoformat(),
            task_id=run.id,
        )
    )
    return FireOutcome.STARTED


def _start_run(uow: UnitOfWork, schedule: Schedule, task_policy: TaskPolicy) -> service.TaskView:
    """Create the fire's task, or its workflow (the run is then the workflow's first step)."""
    if schedule.workflow_spec is None:
        return service.create_task(
            NestedUnitOfWork(uow),
            policy=task_policy,
            owner_id=schedule.owner_id,
            spec=service.TaskSpec(**_unstored(schedule.task_spec)),
        )
    spec = schedule.workflow_spec
    steps = [{**step, "task": _unstored(step["task"])} for step in spec["steps"]]
    created = workflows.create_workflow(
        NestedUnitOfWork(uow),
        policy=task_policy,
        owner_id=schedule.owner_id,
        steps=steps,
        max_steps=len(steps),
        name=spec.get("name"),
    )
    return next(step.task for step in created.steps if not step.depends_on)


def _unstored(spec: dict) -> dict:
    # A stored spec is JSON (schedules.py keeps the input file's id as text).
    spec = dict(spec)
    if spec.get("input_file_id") is not None:
        spec["input_file_id"] = uuid.UUID(spec["input_file_id"])
    return spec


def _unfinished_runs(uow: UnitOfWork, schedule_id: uuid.UUID) -> list[Task]:
    """The schedule's runs still going: a task not ended, or a workflow not finished.

    A workflow's run is its first step (the task that carries the schedule), but the run goes
    on until every step ended.
    """
    return list(
        uow.session.scalars(
            select(Task)
            .outerjoin(Workflow, Workflow.id == Task.workflow_id)
            .where(
                Task.schedule_id == schedule_id,
                or_(
                    and_(Task.workflow_id.is_(None), Task.status.in_(_UNFINISHED)),
                    and_(Task.workflow_id.is_not(None), Workflow.finished_at.is_(None)),
                ),
            )
            .order_by(Task.created_at, Task.id)
        )
    )


def _cancel_run(uow: UnitOfWork, owner_id: uuid.UUID, run: Task) -> None:
    """Cancel a previous run: its task, or every pending and running step of its workflow."""
    if run.workflow_id is None:
        service.cancel_task(NestedUnitOfWork(uow), owner_id=owner_id, task_id=run.id)
    else:
        workflows.cancel_workflow(
            NestedUnitOfWork(uow), owner_id=owner_id, workflow_id=run.workflow_id
        )


def _skip(
    uow: UnitOfWork,
    schedule: Schedule,
    fire: ScheduleFire,
    outcome: FireOutcome,
    reason: str,
    detail: str,
) -> FireOutcome:
    fire.outcome = outcome
    fire.detail = detail
    uow.add_event(
        ScheduleFireSkipped(
            schedule_id=str(schedule.id),
            owner_id=str(schedule.owner_id),
            fire_time=fire.fire_time.isoformat(),
            reason=reason,
            detail=detail,
        )
    )
    return outcome


def fire_all_due(
    uow: Callable[[], UnitOfWork],
    *,
    now: datetime,
    policy: SchedulePolicy,
    task_policy: TaskPolicy,
    stopping: Callable[[], bool] = lambda: False,
    skip: Collection[uuid.UUID] = (),
) -> list[Firing]:
    """Fire every schedule due by `now` that no other scheduler holds, one transaction each.

    Schedules in `skip`, and those that fail in this pass, are left alone.
    """
    firings: list[Firing] = []
    left_alone = set(skip)
    while not stopping():
        firing = fire_next_due(
            uow(), now=now, policy=policy, task_policy=task_policy, skip=left_alone
        )
        if firing is None:
            break
        firings.append(firing)
        if firing.failed:
            left_alone.add(firing.schedule_id)
    return firings


def next_due_at(uow: UnitOfWork, *, skip: Collection[uuid.UUID] = ()) -> datetime | None:
    """The earliest fire time of any active schedule but those in `skip` (None: none)."""
    query = select(func.min(Schedule.next_fire_at)).where(Schedule.paused.is_(False))
    if skip:
        query = query.where(Schedule.id.not_in(list(skip)))
    with uow:
        return uow.session.scalar(query)
