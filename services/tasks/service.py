"""Task use cases: create, list, read, cancel and delete (logs.py keeps their output)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, text

from services.tasks import dependencies
from services.tasks.events import TaskCancelRequested, TaskCreated, TaskDeleted
from services.tasks.images import (
    InvalidImageReference,
    RegistryPolicy,
    RegistryRefused,
    image_allowed,
    parse_image_reference,
)
from services.tasks.input_files import start_input_file_saga
from services.tasks.lifecycle import TERMINAL, is_finished, transition
from services.tasks.models import Task, TaskStatus, TriggerRule
from services.tasks.sagas import tasks_sagas
from shared.db import UnitOfWork
from shared.pagination import KeysetCursor, Page, newest_first_page, page_of

#: The LISTEN/NOTIFY channel told the id of a running task whose owner asked to cancel it.
CANCEL_REQUESTED_CHANNEL = "dockyard_tasks_cancel_requested"
#: The first key of the advisory locks that count one owner's unfinished tasks ("tasq").
_ACTIVE_COUNT_LOCK = 0x74617371


class TaskNotFound(Exception):
    """No such task, or not the caller's (deliberately indistinguishable)."""


class TaskNotFinished(Exception):
    """The task has not reached a terminal status, so it cannot be deleted."""

    def __init__(self, status: str) -> None:
        super().__init__(f"task is {status}")
        self.status = status


class ActiveTaskLimitReached(Exception):
    """The owner already has as many unfinished tasks as the operator allows one user."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} unfinished tasks per user")
        self.limit = limit


class PolicyViolation(Exception):
    """The spec asks for more than the operator allows; `fields` says what, per field."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in sorted(fields.items())))
        self.fields = fields


@dataclass(frozen=True)
class TaskPolicy:
    """The operator's limits and defaults for task specs."""

    max_timeout_seconds: int
    default_timeout_seconds: int
    max_cpu: float
    default_cpu: float
    max_memory_mb: int
    default_memory_mb: int
    max_retries: int
    default_retries: int
    allow_network: bool = False
    #: The executors a task may name (TASKS_EXECUTORS), the first being the default.
    executors: tuple[str, ...] = ("docker",)
    image_allowlist: tuple[str, ...] = ()
    #: Where images may be pulled from (public hosts, and the operator's exceptions).
    registry: RegistryPolicy = field(default_factory=RegistryPolicy)
    #: Unfinished (pending, queued, running) tasks one user may have; None: no cap.
    max_active_tasks_per_user: int | None = None

    def __post_init__(self) -> None:
        pairs = {
            "timeout": (self.default_timeout_seconds, self.max_timeout_seconds),
            "cpu": (self.default_cpu, self.max_cpu),
            "memory": (self.default_memory_mb, self.max_memory_mb),
            "retries": (self.default_retries, self.max_retries),
        }
        for name, (default, maximum) in pairs.items():
            if not 0 <= default <= maximum:
                raise ValueError(f"the default {name} {default} is not within 0..{maximum}")

    @classmethod
    def from_settings(cls, settings: Any) -> TaskPolicy:
        """The policy TasksSettings describe."""
        return cls(
            max_timeout_seconds=settings.MAX_TIMEOUT_SECONDS,
            default_timeout_seconds=settings.DEFAULT_TIMEOUT_SECONDS,
            max_cpu=settings.MAX_CPU,
            default_cpu=settings.DEFAULT_CPU,
            max_memory_mb=settings.MAX_MEMORY_MB,
            default_memory_mb=settings.DEFAULT_MEMORY_MB,
            max_retries=settings.MAX_RETRIES,
            default_retries=settings.DEFAULT_RETRIES,
            allow_network=settings.ALLOW_NETWORK,
            executors=tuple(settings.EXECUTORS) or ("docker",),
            image_allowlist=tuple(settings.IMAGE_ALLOWLIST),
            registry=RegistryPolicy.parse(settings.REGISTRY_PRIVATE_ALLOWLIST),
            max_active_tasks_per_user=settings.MAX_ACTIVE_TASKS_PER_USER,
        )


@dataclass(frozen=True)
class UsageView:
    """The latest resource sample of a running task."""

    cpu_percent: float | None
    memory_bytes: int | None
    sampled_at: datetime


@dataclass(frozen=True)
class TaskView:
    """What the owner may see of a task (env names, never values)."""

    id: str
    name: str | None
    image: str
    command: list[str]
    env: list[dict[str, str]]
    timeout_seconds: int
    cpu_limit: float
    memory_limit_mb: int
    max_retries: int
    network: bool
    status: str
    exit_code: int | None
    error_code: str | None
    error: str | None
    attempts: int
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    usage: UsageView | None
    input_file_id: str | None = None
    #: The schedule that started the task, if one did (and still exists).
    schedule_id: str | None = None
    outputs_note: str | None = None
    executor: str = "docker"
    #: The ids of the tasks this one depends on, in the order given (dependencies.py).
    depends_on: list[str] = field(default_factory=list)
    trigger_rule: str = TriggerRule.ALL_SUCCEEDED
    retry_on_exit_codes: list[int] | None = None
    #: The workflow the task is a step of (workflows.py), and the step's name.
    workflow_id: str | None = None
    workflow_step: str | None = None


def _view(task: Task, depends_on: Sequence[str] = ()) -> TaskView:
    usage = None
    if task.usage_sampled_at is not None:
        usage = UsageView(task.cpu_percent, task.memory_bytes, task.usage_sampled_at)
    return TaskView(
        id=str(task.id),
        name=task.name,
        image=task.image,
        command=list(task.command),
        env=[{"name": item["name"]} for item in task.env],
        timeout_seconds=task.timeout_seconds,
        cpu_limit=task.cpu_limit,
        memory_limit_mb=task.memory_limit_mb,
        max_retries=task.max_retries,
        network=task.network,
        status=task.status,
        exit_code=task.exit_code,
        error_code=task.error_code,
        error=task.error,
        attempts=task.attempts,
        created_at=task.created_at,
        queued_at=task.queued_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        cancel_requested_at=task.cancel_requested_at,
        usage=usage,
        input_file_id=str(task.input_file_id) if task.input_file_id else None,
        schedule_id=str(task.schedule_id) if task.schedule_id else None,
        outputs_note=task.outputs_note,
        executor=task.executor,
        depends_on=list(depends_on),
        trigger_rule=task.trigger_rule,
        retry_on_exit_codes=task.retry_on_exit_codes,
        workflow_id=str(task.workflow_id) if task.workflow_id else None,
        workflow_step=task.workflow_step,
    )


def _full_view(uow: UnitOfWork, task: Task) -> TaskView:
    """The view of one task, its dependencies included."""
    return _view(task, dependencies.dependency_ids(uow.session, [task.id])[task.id])


def task_view(task: Task, depends_on: Sequence[str] = ()) -> TaskView:
    """What the owner may see of `task` (for other use cases that list tasks: a schedule's runs)."""
    return _view(task, depends_on)


def _policy_violations(
    policy: TaskPolicy,
    *,
    image: str,
    timeout_seconds: int,
    cpu_limit: float,
    memory_limit_mb: int,
    max_retries: int,
    network: bool,
    executor: str | None = None,
) -> dict[str, str]:
    fields = {}
    try:
        reference = parse_image_reference(image)
        if not image_allowed(image, list(policy.image_allowlist)):
            fields["image"] = "This image is not on the operator's allow-list."
        else:
            # Refused here, before any pull: the engine's answer (or its silence) would tell the
            # caller what listens on the hosts it can reach.
            policy.registry.check(reference)
    except (InvalidImageReference, RegistryRefused) as exc:
        fields["image"] = str(exc)
    if timeout_seconds > policy.max_timeout_seconds:
        fields["timeout_seconds"] = f"Must be at most {policy.max_timeout_seconds} seconds."
    if cpu_limit > policy.max_cpu:
        fields["cpu_limit"] = f"Must be at most {policy.max_cpu:g} cores."
    if memory_limit_mb > policy.max_memory_mb:
        fields["memory_limit_mb"] = f"Must be at most {policy.max_memory_mb} MiB."
    if max_retries > policy.max_retries:
        fields["max_retries"] = f"Must be at most {policy.max_retries}."
    if network and not policy.allow_network:
        fields["network"] = "Network access is not allowed on this server."
    if executor is not None and executor not in policy.executors:
        allowed = ", ".join(policy.executors)
        fields["executor"] = f"Must be one of this server's executors: {allowed}."
    return fields


def _given_or(value: Any, default: Any) -> Any:
    return default if value is None else value


def task_policy_violations(
    policy: TaskPolicy,
    *,
    image: str,
    timeout_seconds: int | None = None,
    cpu_limit: float | None = None,
    memory_limit_mb: int | None = None,
    max_retries: int | None = None,
    network: bool = False,
    executor: str | None = None,
    **_other_fields: Any,
) -> dict[str, str]:
    """What of a task spec the policy refuses, per field (empty: allowed); checks no quota."""
    return _policy_violations(
        policy,
        image=image,
        network=network,
        executor=executor,
        timeout_seconds=_given_or(timeout_seconds, policy.default_timeout_seconds),
        cpu_limit=_given_or(cpu_limit, policy.default_cpu),
        memory_limit_mb=_given_or(memory_limit_mb, policy.default_memory_mb),
        max_retries=_given_or(max_retries, policy.default_retries),
    )


@dataclass(frozen=True)
class TaskSpec:
    """What a caller asks of a new task; limits left None take the policy's defaults.

    `depends_on` holds ids of the owner's tasks as given (text, checked by create_task);
    workflows wire their steps' dependencies through add_task instead.
    """

    image: str
    command: Sequence[str]
    name: str | None = None
    env: Iterable[dict[str, str]] = ()
    timeout_seconds: int | None = None
    cpu_limit: float | None = None
    memory_limit_mb: int | None = None
    max_retries: int | None = None
    network: bool = False
    input_file_id: uuid.UUID | None = None
    executor: str | None = None
    depends_on: Sequence[str] = ()
    trigger_rule: str = TriggerRule.ALL_SUCCEEDED
    retry_on_exit_codes: Sequence[int] | None = None


def create_task(
    uow: UnitOfWork, *, policy: TaskPolicy, owner_id: uuid.UUID, spec: TaskSpec
) -> TaskView:
    """Record a PENDING task with the policy's defaults filled in.

    With `spec.input_file_id`, the task_input_file saga starts in the same transaction: the task
    stays PENDING until files has leased it the file (input_files.py). With `spec.depends_on`
    (ids of the owner's tasks) it stays PENDING until they allow it by `spec.trigger_rule`
    (dependencies.py). Raises PolicyViolation, UnknownDependency, or ActiveTaskLimitReached
    when the owner has too many unfinished.
    """
    dependency_ids = dependencies.parse_dependency_ids(spec.depends_on)
    with uow:
        task = add_task(uow, policy=policy, owner_id=owner_id, spec=spec, depends_on=dependency_ids)
        view = _view(task, [str(d) for d in dependency_ids])
        uow.commit()
        return view


def add_task(
    uow: UnitOfWork,
    *,
    policy: TaskPolicy,
    owner_id: uuid.UUID,
    spec: TaskSpec,
    depends_on: Sequence[uuid.UUID] = (),
) -> Task:
    """Add a PENDING task and its events to the open unit of work (create_task, workflows).

    `depends_on` are the task ids it waits for (spec.depends_on is not read here).
    Raises PolicyViolation, UnknownDependency, or ActiveTaskLimitReached.
    """
    image, network, executor = spec.image, spec.network, spec.executor
    limits = {
        "timeout_seconds": _given_or(spec.timeout_seconds, policy.default_timeout_seconds),
        "cpu_limit": _given_or(spec.cpu_limit, policy.default_cpu),
        "memory_limit_mb": _given_or(spec.memory_limit_mb, policy.default_memory_mb),
        "max_retries": _given_or(spec.max_retries, policy.default_retries),
    }
    violations = _policy_violations(
        policy, image=image, network=network, executor=executor, **limits
    )
    if violations:
        raise PolicyViolation(violations)
    if policy.max_active_tasks_per_user is not None:
        _check_active_tasks(uow, owner_id, policy.max_active_tasks_per_user)
    locked = dependencies.lock_dependencies(
        uow.session, owner_id=owner_id, dependency_ids=depends_on
    )
    retry_on_exit_codes = spec.retry_on_exit_codes
    task = Task(
        id=uuid.uuid4(),
        owner_id=owner_id,
        name=spec.name,
        image=image,
        command=list(spec.command),
        env=[{"name": item["name"], "value": item["value"]} for item in spec.env],
        network=network,
        executor=executor or policy.executors[0],
        status=TaskStatus.PENDING,
        input_file_id=spec.input_file_id,
        trigger_rule=TriggerRule(spec.trigger_rule),
        retry_on_exit_codes=None if retry_on_exit_codes is None else list(retry_on_exit_codes),
        **limits,
    )
    uow.session.add(task)
    uow.add_event(
        TaskCreated(
            task_id=str(task.id),
            owner_id=str(owner_id),
            name=spec.name,
            image=image,
            network=network,
            **limits,
        )
    )
    uow.flush()
    if locked:
        skipped = dependencies.attach_dependencies(
            uow.session, task=task, dependencies=locked, now=datetime.now(UTC)
        )
        if skipped is not None:
            uow.add_event(skipped)
    if spec.input_file_id is not None and task.status == TaskStatus.PENDING:
        start_input_file_saga(uow.session, tasks_sagas(), task=task)
    return task


def _check_active_tasks(uow: UnitOfWork, owner_id: uuid.UUID, limit: int) -> None:
    """Raise ActiveTaskLimitReached if the owner has `limit` unfinished tasks (counted alone)."""
    # One creation per owner at a time, until commit: two at once must not both see room.
    uow.session.execute(
        text("SELECT pg_advisory_xact_lock(:space, hashtext(:owner))"),
        {"space": _ACTIVE_COUNT_LOCK, "owner": str(owner_id)},
    )
    # Spelled as the statuses it counts, so that ix_tasks_owner_status_created answers it
    # without visiting the owner's finished tasks, however many there are.
    unfinished = [status for status in TaskStatus if status not in TERMINAL]
    active = uow.session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.owner_id == owner_id, Task.status.in_(unfinished))
    )
    if active >= limit:
        raise ActiveTaskLimitReached(limit)


def list_tasks(
    uow: UnitOfWork,
    *,
    owner_id: uuid.UUID,
    first: int,
    after: KeysetCursor | None = None,
    status: str | None = None,
) -> Page[TaskView]:
    """A page of the owner's tasks, newest first, after a cursor."""
    filters = [Task.owner_id == owner_id]
    if status is not None:
        filters.append(Task.status == TaskStatus(status))
    query = newest_first_page(
        select(Task).where(*filters), Task.created_at, Task.id, first=first, after=after
    )
    with uow:
        rows = uow.session.scalars(query).all()
        total = uow.session.scalar(select(func.count()).select_from(Task).where(*filters))
        depends_on = dependencies.dependency_ids(uow.session, [row.id for row in rows])
        return page_of(
            rows,
            first=first,
            total_count=total or 0,
            node=lambda task: _view(task, depends_on.get(task.id, ())),
        )


def owned_task(uow: UnitOfWork, owner_id: uuid.UUID, task_id: uuid.UUID, *, lock: bool) -> Task:
    """The owner's task in the open unit of work (its row locked if `lock`); raises TaskNotFound."""
    query = select(Task).where(Task.id == task_id, Task.owner_id == owner_id)
    if lock:
        query = query.with_for_update()
    task = uow.session.scalar(query)
    if task is None:
        raise TaskNotFound(str(task_id))
    return task


def get_task(uow: UnitOfWork, *, owner_id: uuid.UUID, task_id: uuid.UUID) -> TaskView:
    """One of the owner's tasks; raises TaskNotFound."""
    with uow:
        return _full_view(uow, owned_task(uow, owner_id, task_id, lock=False))


def cancel_task(uow: UnitOfWork, *, owner_id: uuid.UUID, task_id: uuid.UUID) -> TaskView:
    """Cancel a task: at once if it has not started, by the engine if running; raises TaskNotFound.

    A finished task, or a running one already asked to stop, is returned unchanged.
    """
    now = datetime.now(UTC)
    with uow:
        task = owned_task(uow, owner_id, task_id, lock=True)
        if task.status in (TaskStatus.PENDING, TaskStatus.QUEUED):
            uow.add_event(transition(task, TaskStatus.CANCELLED, now=now))
            task.cancel_requested_at = now
            uow.commit()
        elif task.status == TaskStatus.RUNNING and task.cancel_requested_at is None:
            task.cancel_requested_at = now
            uow.add_event(TaskCancelRequested(task_id=str(task.id), owner_id=str(owner_id)))
            # Delivered at commit: the monitor kills the container now, not at its next pass.
            uow.session.execute(
                text("SELECT pg_notify(:channel, :task_id)"),
                {"channel": CANCEL_REQUESTED_CHANNEL, "task_id": str(task.id)},
            )
            uow.commit()
        return _full_view(uow, task)


def delete_task(uow: UnitOfWork, *, owner_id: uuid.UUID, task_id: uuid.UUID) -> None:
    """Delete a finished task and its logs; raises TaskNotFound, TaskNotFinished or
    TaskHasDependants (tasks still wait on it: deleting it would strand them)."""
    with uow:
        task = owned_task(uow, owner_id, task_id, lock=True)
        if not is_finished(task.status):
            raise TaskNotFinished(task.status)
        dependencies.check_no_waiting_dependants(uow.session, task_id=task.id)
        uow.session.execute(delete(Task).where(Task.id == task.id))
        uow.add_event(TaskDeleted(task_id=str(task.id), owner_id=str(owner_id)))
        uow.commit()
