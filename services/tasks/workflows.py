"""Workflows: a DAG of named steps, each a task, created in one request; status from the steps.

`create_workflow` validates the whole DAG before anything is written (unknown step names,
duplicates, cycles named by their path, the per-workflow cap), then creates every step in one
transaction in topological order, each with its dependencies by id (dependencies.py does the
rest: a step starts once its dependencies allow it by its trigger rule).

Status, derived from the steps: FAILED as soon as a step FAILED or TIMED_OUT (`failed_step` names
the first to end so), else CANCELLED once the owner cancelled it or a step ended CANCELLED and all
ended, SUCCEEDED once every step ended otherwise, RUNNING until then. `finished_at` is set, and
WorkflowFinished raised, exactly once: by the consumer of the last step's terminal event, under
the workflow's row lock (`finish_if_done`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from services.tasks import dependencies, service, step_inputs
from services.tasks.events import (
    WorkflowCancelRequested,
    WorkflowCreated,
    WorkflowEvent,
    WorkflowFinished,
)
from services.tasks.lifecycle import TERMINAL
from services.tasks.models import Task, TaskStatus, Workflow
from shared.db import NestedUnitOfWork, UnitOfWork
from shared.pagination import KeysetCursor, Page, newest_first_page, page_of


class InvalidWorkflow(Exception):
    """The DAG is refused before anything is created; `field` says where."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class WorkflowNotFound(Exception):
    """No such workflow, or not the caller's (deliberately indistinguishable)."""


@dataclass(frozen=True)
class StepView:
    """One step: its name, the names it depends on, and its task."""

    name: str
    depends_on: list[str]
    task: service.TaskView


@dataclass(frozen=True)
class WorkflowView:
    """What the owner sees of a workflow."""

    id: str
    name: str | None
    status: str
    failed_step: str | None
    created_at: datetime
    finished_at: datetime | None
    steps: list[StepView] = field(default_factory=list)


def ordered_steps(steps: Sequence[Mapping[str, Any]], *, max_steps: int) -> list[Mapping[str, Any]]:
    """The steps in an order where each comes after its dependencies; raises InvalidWorkflow."""
    if not steps:
        raise InvalidWorkflow("steps", "A workflow needs at least one step.")
    if len(steps) > max_steps:
        raise InvalidWorkflow("steps", f"A workflow may have at most {max_steps} steps.")
    by_name: dict[str, Mapping[str, Any]] = {}
    for index, step in enumerate(steps):
        if step["name"] in by_name:
            raise InvalidWorkflow(f"steps.{index}.name", f"Duplicate step name {step['name']!r}.")
        by_name[step["name"]] = step
        if step["task"].get("depends_on"):
            raise InvalidWorkflow(
                f"steps.{index}.task.depends_on",
                "A step's task names no dependsOn ids: give the step's dependsOn step names.",
            )
    for index, step in enumerate(steps):
        for needed in step.get("depends_on") or ():
            if needed not in by_name:
                raise InvalidWorkflow(f"steps.{index}.depends_on", f"Unknown step name {needed!r}.")
        if step.get("depends_on") and step["task"].get("input_file_id") is not None:
            # Both would be mounted at /input: the dependencies' outputs as /input/<step>/.
            raise InvalidWorkflow(
                f"steps.{index}.task.input_file_id",
                "A step that depends on other steps reads their outputs under /input; "
                "only a step without dependencies may take an input file.",
            )
    order: list[Mapping[str, Any]] = []
    state: dict[str, str] = {}  # "visiting" or "done"

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name) :] + [name]
            raise InvalidWorkflow("steps", f"The steps form a cycle: {' → '.join(cycle)}.")
        state[name] = "visiting"
        for needed in by_name[name].get("depends_on") or ():
            visit(needed, [*path, name])
        state[name] = "done"
        order.append(by_name[name])

    for step in steps:
        visit(step["name"], [])
    return order


def create_workflow(
    uow: UnitOfWork,
    *,
    policy: service.TaskPolicy,
    owner_id: uuid.UUID,
    steps: Sequence[Mapping[str, Any]],
    max_steps: int,
    name: str | None = None,
) -> WorkflowView:
    """Validate the DAG, then create the workflow and every step in one transaction.

    Raises InvalidWorkflow (the DAG), service.PolicyViolation (a step's task; fields prefixed
    with the step) or service.ActiveTaskLimitReached.
    """
    order = ordered_steps(steps, max_steps=max_steps)
    index_of = {step["name"]: index for index, step in enumerate(steps)}
    with uow:
        workflow = Workflow(id=uuid.uuid4(), owner_id=owner_id, name=name)
        uow.session.add(workflow)
        uow.flush()
        ids: dict[str, uuid.UUID] = {}
        for step in order:
            spec = {key: value for key, value in step["task"].items() if key != "depends_on"}
            try:
                task = service.add_task(
                    uow,
                    policy=policy,
                    owner_id=owner_id,
                    spec=service.TaskSpec(**spec),
                    depends_on=[ids[needed] for needed in step.get("depends_on") or ()],
                )
            except service.PolicyViolation as exc:
                prefix = f"steps.{index_of[step['name']]}.task."
                raise service.PolicyViolation(
                    {prefix + key: value for key, value in exc.fields.items()}
                ) from None
            task.workflow_id, task.workflow_step = workflow.id, step["name"]
            task.workflow_position = index_of[step["name"]]
            ids[step["name"]] = task.id
        uow.flush()
        uow.add_event(
            WorkflowCreated(
                workflow_id=str(workflow.id), owner_id=str(owner_id), name=name, steps=len(steps)
            )
        )
        view = _view(uow.session, workflow)
        uow.commit()
        return view


def _steps(session: Session, workflow_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Task]]:
    result: dict[uuid.UUID, list[Task]] = {workflow_id: [] for workflow_id in workflow_ids}
    if workflow_ids:
        for task in session.scalars(
            select(Task)
            .where(Task.workflow_id.in_(workflow_ids))
            .order_by(Task.workflow_position, Task.id)
            .execution_options(populate_existing=True)
        ):
            result[task.workflow_id].append(task)
    return result


def status_of(workflow: Workflow, steps: Sequence[Task]) -> tuple[str, str | None]:
    """The workflow's status and failed step, from its steps'."""
    failed = [t for t in steps if t.status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT)]
    if failed:
        first = min(failed, key=lambda t: t.finished_at or datetime.max.replace(tzinfo=UTC))
        return "FAILED", first.workflow_step
    done = all(t.status in TERMINAL for t in steps)
    if workflow.cancel_requested_at is not None:
        return "CANCELLED", None
    if not done:
        return "RUNNING", None
    if any(t.status == TaskStatus.CANCELLED for t in steps):
        return "CANCELLED", None
    return "SUCCEEDED", None


def _view(
    session: Session, workflow: Workflow, steps: Sequence[Task] | None = None
) -> WorkflowView:
    if steps is None:
        steps = _steps(session, [workflow.id])[workflow.id]
    name_of = {task.id: task.workflow_step for task in steps}
    depends = dependencies.dependency_ids(session, [task.id for task in steps])
    status, failed_step = status_of(workflow, steps)
    return WorkflowView(
        id=str(workflow.id),
        name=workflow.name,
        status=status,
        failed_step=failed_step,
        created_at=workflow.created_at,
        finished_at=workflow.finished_at,
        steps=[
            StepView(
                name=task.workflow_step,
                depends_on=[
                    name_of[uuid.UUID(d)] for d in depends[task.id] if uuid.UUID(d) in name_of
                ],
                task=service.task_view(task, depends[task.id]),
            )
            for task in steps
        ],
    )


def _owned(uow: UnitOfWork, owner_id: uuid.UUID, workflow_id: uuid.UUID, *, lock: bool) -> Workflow:
    query = select(Workflow).where(Workflow.id == workflow_id, Workflow.owner_id == owner_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    workflow = uow.session.scalar(query)
    if workflow is None:
        raise WorkflowNotFound(str(workflow_id))
    return workflow


def get_workflow(uow: UnitOfWork, *, owner_id: uuid.UUID, workflow_id: uuid.UUID) -> WorkflowView:
    """One of the owner's workflows with its steps; raises WorkflowNotFound."""
    with uow:
        return _view(uow.session, _owned(uow, owner_id, workflow_id, lock=False))


def list_workflows(
    uow: UnitOfWork, *, owner_id: uuid.UUID, first: int, after: KeysetCursor | None = None
) -> Page[WorkflowView]:
    """A page of the owner's workflows, newest first, after a cursor."""
    query = newest_first_page(
        select(Workflow).where(Workflow.owner_id == owner_id),
        Workflow.created_at,
        Workflow.id,
        first=first,
        after=after,
    )
    with uow:
        rows = uow.session.scalars(query).all()
        total = uow.session.scalar(
            select(func.count()).select_from(Workflow).where(Workflow.owner_id == owner_id)
        )
        steps = _steps(uow.session, [row.id for row in rows])
        return page_of(
            rows,
            first=first,
            total_count=total or 0,
            node=lambda workflow: _view(uow.session, workflow, steps[workflow.id]),
        )


def cancel_workflow(
    uow: UnitOfWork, *, owner_id: uuid.UUID, workflow_id: uuid.UUID
) -> WorkflowView:
    """Cancel every pending and running step (service.cancel_task); a finished one is unchanged."""
    now = datetime.now(UTC)
    with uow:
        workflow = _owned(uow, owner_id, workflow_id, lock=False)
        if workflow.finished_at is None and workflow.cancel_requested_at is None:
            # Steps first (by id), the workflow's row last: the order the consumer locks them in
            # (dependencies.release_dependants, then finish_if_done), so neither waits on the other.
            steps = sorted(_steps(uow.session, [workflow.id])[workflow.id], key=lambda t: t.id)
            for task in steps:
                if task.status not in TERMINAL:
                    service.cancel_task(NestedUnitOfWork(uow), owner_id=owner_id, task_id=task.id)
            workflow = _owned(uow, owner_id, workflow_id, lock=True)
            if workflow.cancel_requested_at is None:
                workflow.cancel_requested_at = now
                uow.add_event(
                    WorkflowCancelRequested(workflow_id=str(workflow.id), owner_id=str(owner_id))
                )
        uow.flush()
        view = _view(uow.session, workflow)
        uow.commit()
        return view


def finish_if_done(session: Session, *, task_id: uuid.UUID) -> list[WorkflowEvent]:
    """Once every step of the workflow of `task_id` ended: finished_at, WorkflowFinished (once)."""
    workflow_id = session.scalar(select(Task.workflow_id).where(Task.id == task_id))
    if workflow_id is None:
        return []
    workflow = session.get(Workflow, workflow_id, with_for_update=True, populate_existing=True)
    if workflow is None or workflow.finished_at is not None:
        return []
    steps = _steps(session, [workflow.id])[workflow.id]
    if not all(task.status in TERMINAL for task in steps):
        return []
    workflow.finished_at = max((t.finished_at for t in steps if t.finished_at), default=None) or (
        datetime.now(UTC)
    )
    status, failed_step = status_of(workflow, steps)
    step_inputs.remove(_output_root(), [task.id for task in steps])
    return [
        WorkflowFinished(
            workflow_id=str(workflow.id),
            owner_id=str(workflow.owner_id),
            name=workflow.name,
            status=status,
            failed_step=failed_step,
        )
    ]


def _output_root() -> str:
    from services.tasks.output_saga import output_settings

    return output_settings().OUTPUT_DIR


def delete_user_workflows(session: Session, *, owner_id: uuid.UUID) -> None:
    """Delete the user's workflows (after their steps, which erasure deletes as tasks)."""
    session.execute(delete(Workflow).where(Workflow.owner_id == owner_id))
