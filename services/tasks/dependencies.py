"""Task dependencies: a task that waits on others, and the decision to run or skip it.

`createTask(dependsOn)` records the edges (task_dependencies) in the task's transaction, with the
dependencies' rows locked FOR SHARE: a dependency cannot end between the look and the commit, so
either its end is seen here (it counts at once) or its terminal event comes after the commit and
finds the edge. A task with a dependency still unfinished is PENDING with `awaiting_dependencies`,
which the claim, the launcher and the reconciler never start (transitions.py).

The release is event-driven: the consumer of a dependency's terminal event (TaskSucceeded,
TaskFailed, TaskTimedOut, TaskCancelled, TaskSkipped) calls `release_dependants`, which locks each
dependant's row and decides once, in the consumer's inbox transaction: whichever consumer locks
first decides, the others find it decided, and a crash rolls the decision and the inbox row back
together (the event is redelivered). The decision: ALL_SUCCEEDED runs the task once every
dependency SUCCEEDED and SKIPS it (naming the dependency) as soon as one ended otherwise; ALL_DONE
runs it once every dependency ended. A run raises TaskReleased, which the launcher consumes like a
TaskCreated; a skip raises TaskSkipped, whose own consumer skips the dependants in turn.

Deleting a task whose dependants still wait on it is refused (TaskHasDependants, a CONFLICT):
no task waits forever on one that is gone. Account deletion cancels every waiting task first.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from services.tasks.events import TaskEvent, TaskReleased
from services.tasks.lifecycle import is_finished, transition
from services.tasks.models import Task, TaskDependency, TaskStatus, TriggerRule

#: The events that end a task: each may release the tasks that wait on it.
TERMINAL_EVENTS = ("TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskCancelled", "TaskSkipped")
#: The error code of a task skipped because a dependency did not succeed.
DEPENDENCY_FAILED = "DEPENDENCY_FAILED"


class UnknownDependency(Exception):
    """A dependsOn id is not one of the caller's tasks (or not a task id at all)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"No task {task_id} of yours to depend on.")
        self.task_id = task_id


class TaskHasDependants(Exception):
    """The task cannot be deleted: tasks still wait on it."""

    def __init__(self, dependants: Sequence[uuid.UUID]) -> None:
        names = ", ".join(str(d) for d in dependants)
        super().__init__(f"Tasks still wait on this one: {names}.")
        self.dependants = list(dependants)


@dataclass(frozen=True)
class Verdict:
    """What the dependencies of a task say: wait, run, or skip (with the reason)."""

    action: str  # "wait", "run", "skip"
    reason: str | None = None


def _label(task: Task) -> str:
    return f"{task.name!r} ({task.id})" if task.name else str(task.id)


def verdict(task_rule: str, dependencies: Sequence[Task]) -> Verdict:
    """The decision the trigger rule makes on the dependencies as they are now."""
    if task_rule == TriggerRule.ALL_SUCCEEDED:
        for dependency in dependencies:
            if is_finished(dependency.status) and dependency.status != TaskStatus.SUCCEEDED:
                return Verdict(
                    "skip", f"Dependency {_label(dependency)} ended {dependency.status}."
                )
    if all(is_finished(dependency.status) for dependency in dependencies):
        return Verdict("run")
    return Verdict("wait")


def parse_dependency_ids(values: Sequence[str]) -> list[uuid.UUID]:
    """The ids of a dependsOn list, in order, without repeats; raises UnknownDependency."""
    ids: list[uuid.UUID] = []
    for value in values:
        try:
            task_id = uuid.UUID(str(value))
        except ValueError:
            raise UnknownDependency(str(value)) from None
        if task_id not in ids:
            ids.append(task_id)
    return ids


def lock_dependencies(
    session: Session, *, owner_id: uuid.UUID, dependency_ids: Sequence[uuid.UUID]
) -> list[Task]:
    """The owner's tasks with these ids, locked FOR SHARE; raises UnknownDependency."""
    if not dependency_ids:
        return []  # most tasks: no round trip for an empty IN list
    found = {
        task.id: task
        for task in session.scalars(
            select(Task)
            .where(Task.id.in_(dependency_ids), Task.owner_id == owner_id)
            .order_by(Task.id)
            .with_for_update(read=True)
        )
    }
    for task_id in dependency_ids:
        if task_id not in found:
            raise UnknownDependency(str(task_id))
    return [found[task_id] for task_id in dependency_ids]


def attach_dependencies(
    session: Session, *, task: Task, dependencies: Sequence[Task], now: datetime
) -> TaskEvent | None:
    """Record the new task's edges and decide at once; the event a settled decision raises.

    The dependencies are locked (lock_dependencies). The task waits (None), is skipped
    (TaskSkipped), or runs from its TaskCreated (None: nothing more to say).
    """
    for position, dependency in enumerate(dependencies):
        session.add(TaskDependency(task_id=task.id, depends_on_id=dependency.id, position=position))
    decided = verdict(task.trigger_rule, dependencies)
    if decided.action == "wait":
        task.awaiting_dependencies = True
        return None
    if decided.action == "skip":
        return transition(
            task, TaskStatus.SKIPPED, now=now, error_code=DEPENDENCY_FAILED, error=decided.reason
        )
    return None


def release_dependants(session: Session, *, task_id: uuid.UUID) -> list[TaskEvent]:
    """Decide for every task waiting on `task_id` (which ended); the events the decisions raise.

    Each dependant's row is locked, and only one still awaiting its dependencies is decided:
    idempotent, and exactly once however many consumers handle the end of its dependencies.
    """
    dependant_ids = session.scalars(
        select(TaskDependency.task_id)
        .where(TaskDependency.depends_on_id == task_id)
        .order_by(TaskDependency.task_id)
    ).all()
    now = datetime.now(UTC)
    events: list[TaskEvent] = []
    for dependant_id in dependant_ids:
        dependant = session.get(Task, dependant_id, with_for_update=True, populate_existing=True)
        if dependant is None or not dependant.awaiting_dependencies:
            continue
        if dependant.status != TaskStatus.PENDING:
            dependant.awaiting_dependencies = False  # cancelled while it waited
            continue
        decided = verdict(dependant.trigger_rule, dependencies_of(session, dependant.id))
        if decided.action == "wait":
            continue
        dependant.awaiting_dependencies = False
        if decided.action == "skip":
            events.append(
                transition(
                    dependant,
                    TaskStatus.SKIPPED,
                    now=now,
                    error_code=DEPENDENCY_FAILED,
                    error=decided.reason,
                )
            )
        else:
            events.append(TaskReleased(task_id=str(dependant.id), owner_id=str(dependant.owner_id)))
    session.flush()
    return events


def dependencies_of(session: Session, task_id: uuid.UUID) -> list[Task]:
    """The tasks `task_id` depends on, in the order given, as committed now."""
    return list(
        session.scalars(
            select(Task)
            .join(TaskDependency, TaskDependency.depends_on_id == Task.id)
            .where(TaskDependency.task_id == task_id)
            .order_by(TaskDependency.position)
            .execution_options(populate_existing=True)
        )
    )


def dependency_ids(session: Session, task_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """The dependsOn ids of each task, in the order given."""
    result: dict[uuid.UUID, list[str]] = {task_id: [] for task_id in task_ids}
    if not task_ids:
        return result
    rows = session.execute(
        select(TaskDependency.task_id, TaskDependency.depends_on_id)
        .where(TaskDependency.task_id.in_(task_ids))
        .order_by(TaskDependency.task_id, TaskDependency.position)
    )
    for task_id, depends_on_id in rows:
        result[task_id].append(str(depends_on_id))
    return result


def check_no_waiting_dependants(session: Session, *, task_id: uuid.UUID) -> None:
    """Raise TaskHasDependants if tasks still await this one (deleting it would strand them)."""
    dependant = aliased(Task)
    waiting = session.scalars(
        select(TaskDependency.task_id)
        .join(dependant, dependant.id == TaskDependency.task_id)
        .where(TaskDependency.depends_on_id == task_id, dependant.awaiting_dependencies)
    ).all()
    if waiting:
        raise TaskHasDependants(waiting)


def has_dependencies(session: Session, task_id: uuid.UUID) -> bool:
    """Whether the task has any dependency."""
    return bool(session.scalar(select(exists().where(TaskDependency.task_id == task_id))))
