"""Schedule use cases: create, list, read, pause, resume, delete, upcoming fire times and runs.

A schedule starts a task again and again (firing.py fires it; scheduler.py is the process).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text

from services.tasks.events import (
    ScheduleCreated,
    ScheduleDeleted,
    SchedulePaused,
    ScheduleResumed,
)
from services.tasks.models import MisfirePolicy, OverlapPolicy, Schedule, Task
from services.tasks.recurrence import InvalidRecurrence, Recurrence, shortest_gap
from services.tasks.service import TaskPolicy, TaskView, task_policy_violations, task_view
from shared.db import UnitOfWork
from shared.pagination import KeysetCursor, Page, newest_first_page, page_of

#: The LISTEN/NOTIFY channel that wakes the schedulers: a schedule may be due sooner now.
SCHEDULES_CHANGED_CHANNEL = "dockyard_tasks_schedules_changed"
#: Fire times looked at to find how often a cron expression fires (the minimum interval).
GAP_SAMPLE = 200
#: The first key of the advisory locks that count one owner's schedules ("schd").
_SCHEDULE_COUNT_LOCK = 0x73636864


class ScheduleNotFound(Exception):
    """No such schedule, or not the caller's (deliberately indistinguishable)."""


class ScheduleLimitReached(Exception):
    """The owner already has as many schedules as the operator allows one user."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} schedules per user")
        self.limit = limit


class InvalidSchedule(Exception):
    """The schedule cannot be created as given; `fields` says why, per field."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in sorted(fields.items())))
        self.fields = fields


@dataclass(frozen=True)
class SchedulePolicy:
    """The operator's limits on schedules, and how late fire times are treated."""

    max_per_user: int
    min_interval_seconds: int
    misfire_grace_seconds: float
    catch_up_max: int

    @classmethod
    def from_settings(cls, settings: Any) -> SchedulePolicy:
        """The policy TasksSettings describe."""
        return cls(
            max_per_user=settings.SCHEDULES_MAX_PER_USER,
            min_interval_seconds=settings.SCHEDULE_MIN_INTERVAL_SECONDS,
            misfire_grace_seconds=settings.SCHEDULE_MISFIRE_GRACE_SECONDS,
            catch_up_max=settings.SCHEDULE_CATCH_UP_MAX,
        )


@dataclass(frozen=True)
class ScheduleView:
    """What the owner may see of a schedule (its task's env names, never values)."""

    id: str
    name: str | None
    cron: str | None
    interval_seconds: int | None
    timezone: str
    paused: bool
    misfire_policy: str
    overlap_policy: str
    next_run_at: datetime | None
    last_fire_at: datetime | None
    task: dict[str, Any] | None
    created_at: datetime


def recurrence_of(schedule: Schedule) -> Recurrence:
    """When `schedule` fires."""
    return Recurrence(
        schedule.timezone,
        cron=schedule.cron,
        interval_seconds=schedule.interval_seconds,
        anchor=schedule.created_at,
    )


def _stored_spec(task: Mapping[str, Any]) -> dict[str, Any]:
    # The spec is kept as JSON; firing.py turns the input file's id back into a UUID.
    stored = dict(task)
    if stored.get("input_file_id") is not None:
        stored["input_file_id"] = str(stored["input_file_id"])
    return stored


def _stored_workflow(workflow: Mapping[str, Any]) -> dict[str, Any]:
    steps = [{**step, "task": _stored_spec(step["task"])} for step in workflow["steps"]]
    return {"name": workflow.get("name"), "steps": steps}


def _workflow_problems(workflow: Mapping[str, Any], task_policy: TaskPolicy) -> dict[str, str]:
    """What of a scheduled workflow is refused, per field (its DAG, its steps' tasks)."""
    from services.tasks.workflows import InvalidWorkflow, ordered_steps

    steps = workflow.get("steps") or []
    try:
        ordered_steps(steps, max_steps=max(len(steps), 1))
    except InvalidWorkflow as exc:
        return {f"workflow.{exc.field}": str(exc)}
    problems = {}
    for index, step in enumerate(steps):
        for field, message in task_policy_violations(task_policy, **step["task"]).items():
            problems[f"workflow.steps.{index}.task.{field}"] = message
    return problems


def _shown_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    shown = dict(spec)
    shown["env"] = [{"name": item["name"]} for item in spec.get("env", [])]
    return shown


def _view(schedule: Schedule) -> ScheduleView:
    zone = recurrence_of(schedule).zone
    next_run_at = None
    if not schedule.paused and schedule.next_fire_at is not None:
        next_run_at = schedule.next_fire_at.astimezone(zone)
    return ScheduleView(
        id=str(schedule.id),
        name=schedule.name,
        cron=schedule.cron,
        interval_seconds=schedule.interval_seconds,
        timezone=schedule.timezone,
        paused=schedule.paused,
        misfire_policy=schedule.misfire_policy,
        overlap_policy=schedule.overlap_policy,
        next_run_at=next_run_at,
        last_fire_at=schedule.last_fire_at,
        task=None if schedule.task_spec is None else _shown_spec(schedule.task_spec),
        created_at=schedule.created_at,
    )


def _recurrence_problems(
    policy: SchedulePolicy, recurrence: Recurrence, now: datetime
) -> dict[str, str]:
    minimum = timedelta(seconds=policy.min_interval_seconds)
    if recurrence.interval_seconds is not None:
        if recurrence.interval_seconds < policy.min_interval_seconds:
            return {"interval_seconds": f"Must be at least {policy.min_interval_seconds} seconds."}
        return {}
    if recurrence.next_after(now) is None:
        return {"cron": f"{recurrence.cron!r} never fires."}
    gap = shortest_gap(recurrence, now, sample=GAP_SAMPLE)
    if gap is not None and gap < minimum:
        return {
            "cron": f"Fires every {int(gap.total_seconds())} seconds; schedules may fire at most "
            f"once every {policy.min_interval_seconds} seconds."
        }
    return {}


def _notify_schedulers(uow: UnitOfWork, schedule_id: uuid.UUID) -> None:
    # Delivered at commit: a scheduler asleep until a later fire time looks again now.
    uow.session.execute(
        text("SELECT pg_notify(:channel, :id)"),
        {"channel": SCHEDULES_CHANGED_CHANNEL, "id": str(schedule_id)},
    )


def create_schedule(
    uow: UnitOfWork,
    *,
    policy: SchedulePolicy,
    task_policy: TaskPolicy,
    owner_id: uuid.UUID,
    task: Mapping[str, Any] | None = None,
    workflow: Mapping[str, Any] | None = None,
    cron: str | None = None,
    interval_seconds: int | None = None,
    timezone: str = "UTC",
    name: str | None = None,
    misfire_policy: str = MisfirePolicy.SKIP,
    overlap_policy: str = OverlapPolicy.ALLOW,
    now: datetime | None = None,
) -> ScheduleView:
    """Record a schedule of `task` (a createTask spec) or `workflow` (a createWorkflow spec); it
    first fires at its next fire time.

    Raises InvalidSchedule (cron, interval, timezone or task spec refused, per field) or
    ScheduleLimitReached.
    """
    now = now or datetime.now(UTC)
    try:
        recurrence = Recurrence(timezone, cron=cron, interval_seconds=interval_seconds, anchor=now)
    except InvalidRecurrence as exc:
        raise InvalidSchedule({exc.field: exc.message}) from None
    problems = _recurrence_problems(policy, recurrence, now)
    # The spec is checked now, so a schedule the operator's policy refuses is never created; it
    # is checked again at every fire (the policy may change meanwhile).
    if task is not None:
        for field, message in task_policy_violations(task_policy, **task).items():
            problems[f"task.{field}"] = message
    else:
        problems.update(_workflow_problems(workflow or {}, task_policy))
    if problems:
        raise InvalidSchedule(problems)
    with uow:
        _check_schedule_count(uow, owner_id, policy.max_per_user)
        schedule = Schedule(
            id=uuid.uuid4(),
            owner_id=owner_id,
            name=name,
            cron=cron,
            interval_seconds=interval_seconds,
            timezone=timezone,
            task_spec=None if task is None else _stored_spec(task),
            workflow_spec=None if workflow is None else _stored_workflow(workflow),
            misfire_policy=MisfirePolicy(misfire_policy),
            overlap_policy=OverlapPolicy(overlap_policy),
            paused=False,
            next_fire_at=recurrence.next_after(now),
            created_at=now,
        )
        uow.session.add(schedule)
        uow.add_event(
            ScheduleCreated(
                schedule_id=str(schedule.id),
                owner_id=str(owner_id),
                name=name,
                cron=cron,
                interval_seconds=interval_seconds,
                timezone=timezone,
                misfire_policy=schedule.misfire_policy,
                overlap_policy=schedule.overlap_policy,
                next_fire_at=_iso(schedule.next_fire_at),
            )
        )
        _notify_schedulers(uow, schedule.id)
        uow.commit()
        return _view(schedule)


def _iso(moment: datetime | None) -> str | None:
    # Events carry UTC, whatever the schedule's timezone (docs/events.md).
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _check_schedule_count(uow: UnitOfWork, owner_id: uuid.UUID, limit: int) -> None:
    # One creation per owner at a time, until commit: two at once must not both see room.
    uow.session.execute(
        text("SELECT pg_advisory_xact_lock(:space, hashtext(:owner))"),
        {"space": _SCHEDULE_COUNT_LOCK, "owner": str(owner_id)},
    )
    count = uow.session.scalar(
        select(func.count()).select_from(Schedule).where(Schedule.owner_id == owner_id)
    )
    if count >= limit:
        raise ScheduleLimitReached(limit)


def _owned(uow: UnitOfWork, owner_id: uuid.UUID, schedule_id: uuid.UUID, *, lock: bool) -> Schedule:
    query = select(Schedule).where(Schedule.id == schedule_id, Schedule.owner_id == owner_id)
    if lock:
        query = query.with_for_update()
    schedule = uow.session.scalar(query)
    if schedule is None:
        raise ScheduleNotFound(str(schedule_id))
    return schedule


def list_schedules(
    uow: UnitOfWork, *, owner_id: uuid.UUID, first: int, after: KeysetCursor | None = None
) -> Page[ScheduleView]:
    """A page of the owner's schedules, newest first, after a cursor."""
    owned = Schedule.owner_id == owner_id
    query = newest_first_page(
        select(Schedule).where(owned), Schedule.created_at, Schedule.id, first=first, after=after
    )
    with uow:
        rows = uow.session.scalars(query).all()
        total = uow.session.scalar(select(func.count()).select_from(Schedule).where(owned))
        return page_of(rows, first=first, total_count=total or 0, node=_view)


def get_schedule(uow: UnitOfWork, *, owner_id: uuid.UUID, schedule_id: uuid.UUID) -> ScheduleView:
    """One of the owner's schedules; raises ScheduleNotFound."""
    with uow:
        return _view(_owned(uow, owner_id, schedule_id, lock=False))


def pause_schedule(uow: UnitOfWork, *, owner_id: uuid.UUID, schedule_id: uuid.UUID) -> ScheduleView:
    """Stop a schedule firing until resumed (a paused one is returned unchanged)."""
    with uow:
        schedule = _owned(uow, owner_id, schedule_id, lock=True)
        if not schedule.paused:
            schedule.paused = True
            uow.add_event(SchedulePaused(schedule_id=str(schedule.id), owner_id=str(owner_id)))
            uow.commit()
        return _view(schedule)


def resume_schedule(
    uow: UnitOfWork,
    *,
    owner_id: uuid.UUID,
    schedule_id: uuid.UUID,
    now: datetime | None = None,
) -> ScheduleView:
    """Let a paused schedule fire again, from its next fire time after now (nothing caught up)."""
    now = now or datetime.now(UTC)
    with uow:
        schedule = _owned(uow, owner_id, schedule_id, lock=True)
        if schedule.paused:
            schedule.paused = False
            schedule.next_fire_at = recurrence_of(schedule).next_after(now)
            uow.add_event(
                ScheduleResumed(
                    schedule_id=str(schedule.id),
                    owner_id=str(owner_id),
                    next_fire_at=_iso(schedule.next_fire_at),
                )
            )
            _notify_schedulers(uow, schedule.id)
            uow.commit()
        return _view(schedule)


def delete_schedule(uow: UnitOfWork, *, owner_id: uuid.UUID, schedule_id: uuid.UUID) -> None:
    """Delete a schedule; the tasks it started stay (their `schedule` becomes null)."""
    with uow:
        schedule = _owned(uow, owner_id, schedule_id, lock=True)
        uow.session.execute(delete(Schedule).where(Schedule.id == schedule.id))
        uow.add_event(ScheduleDeleted(schedule_id=str(schedule.id), owner_id=str(owner_id)))
        uow.commit()


def next_runs(
    uow: UnitOfWork,
    *,
    owner_id: uuid.UUID,
    schedule_id: uuid.UUID,
    count: int,
    now: datetime | None = None,
) -> list[datetime]:
    """The schedule's next `count` fire times after now, in its timezone; none while paused."""
    now = now or datetime.now(UTC)
    with uow:
        schedule = _owned(uow, owner_id, schedule_id, lock=False)
        if schedule.paused:
            return []
        return recurrence_of(schedule).upcoming(now, count)


def list_runs(
    uow: UnitOfWork,
    *,
    owner_id: uuid.UUID,
    schedule_id: uuid.UUID,
    first: int,
    after: KeysetCursor | None = None,
) -> Page[TaskView]:
    """A page of the tasks the schedule started, newest first; raises ScheduleNotFound."""
    runs = (Task.schedule_id == schedule_id, Task.owner_id == owner_id)
    query = newest_first_page(
        select(Task).where(*runs), Task.created_at, Task.id, first=first, after=after
    )
    with uow:
        _owned(uow, owner_id, schedule_id, lock=False)
        rows = uow.session.scalars(query).all()
        total = uow.session.scalar(select(func.count()).select_from(Task).where(*runs))
        return page_of(rows, first=first, total_count=total or 0, node=task_view)


def delete_user_schedules(uow: UnitOfWork, *, owner_id: uuid.UUID) -> int:
    """Delete every schedule of a user (account deletion); how many there were."""
    with uow:
        deleted = uow.session.scalars(
            delete(Schedule).where(Schedule.owner_id == owner_id).returning(Schedule.id)
        ).all()
        for schedule_id in deleted:
            uow.add_event(ScheduleDeleted(schedule_id=str(schedule_id), owner_id=str(owner_id)))
        uow.commit()
        return len(deleted)
