"""Workflows in the service layer: the DAG's validation, and account deletion removing them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.tasks import erasure, firing, schedules, workflows
from services.tasks.models import Task, Workflow
from services.tasks.tests.schedule_support import TASK_POLICY, policy, schedule_database

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db():
    """A tasks database of this module's own."""
    with schedule_database() as database:
        yield database


def _step(name: str, *depends_on: str) -> dict:
    return {
        "name": name,
        "task": {"image": "busybox", "command": ["true"]},
        "depends_on": list(depends_on),
    }


def _count(db, model, owner_id: uuid.UUID) -> int:
    with db.uow() as uow:
        return uow.session.scalar(
            select(func.count()).select_from(model).where(model.owner_id == owner_id)
        )


def test_steps_are_ordered_after_their_dependencies():
    order = workflows.ordered_steps(
        [_step("d", "b", "c"), _step("b", "a"), _step("c", "a"), _step("a")], max_steps=10
    )
    names = [step["name"] for step in order]
    assert names.index("a") < names.index("b") < names.index("d")
    assert names.index("c") < names.index("d")


@pytest.mark.parametrize(
    ("steps", "field", "says"),
    [
        ([_step("a", "b"), _step("b", "c"), _step("c", "a")], "steps", "a → b → c → a"),
        ([_step("a", "zz")], "steps.0.depends_on", "'zz'"),
        ([_step("a"), _step("b"), _step("a")], "steps.2.name", "Duplicate step name 'a'"),
        ([_step(str(n)) for n in range(4)], "steps", "at most 3 steps"),
        (
            [
                _step("a"),
                {**_step("b", "a"), "task": {"image": "busybox", "input_file_id": uuid.uuid4()}},
            ],
            "steps.1.task.input_file_id",
            "only a step without dependencies may take an input file",
        ),
    ],
)
def test_an_invalid_dag_names_what_is_wrong(steps, field, says):
    with pytest.raises(workflows.InvalidWorkflow) as raised:
        workflows.ordered_steps(steps, max_steps=3)
    assert raised.value.field == field and says in str(raised.value)


def test_a_refused_step_creates_nothing_and_names_the_step(db):
    owner = uuid.uuid4()
    bad = {"name": "b", "task": {"image": "busybox", "command": ["true"], "timeout_seconds": 10**9}}
    with pytest.raises(workflows.service.PolicyViolation) as raised:
        workflows.create_workflow(
            db.uow(), policy=TASK_POLICY, owner_id=owner, steps=[_step("a"), bad], max_steps=10
        )
    assert list(raised.value.fields) == ["steps.1.task.timeout_seconds"]
    assert (_count(db, Workflow, owner), _count(db, Task, owner)) == (0, 0)


def test_erasing_a_user_deletes_their_workflows_and_steps(db):
    leaving, staying = uuid.uuid4(), uuid.uuid4()
    for owner in (leaving, staying):
        workflows.create_workflow(
            db.uow(),
            policy=TASK_POLICY,
            owner_id=owner,
            steps=[_step("a"), _step("b", "a")],
            max_steps=10,
        )
    with db.uow() as uow:
        erasure.erase_user_tasks(uow.session, user_id=str(leaving), saga_id=str(uuid.uuid4()))
        uow.session.commit()
    assert (_count(db, Workflow, leaving), _count(db, Task, leaving)) == (0, 0)
    assert (_count(db, Workflow, staying), _count(db, Task, staying)) == (1, 2)


def test_a_scheduled_workflow_creates_the_workflow_at_each_fire_and_lists_its_first_step(db):
    owner = uuid.uuid4()
    created = schedules.create_schedule(
        db.uow(),
        policy=policy(),
        task_policy=TASK_POLICY,
        owner_id=owner,
        workflow={"name": "nightly", "steps": [_step("load", "extract"), _step("extract")]},
        interval_seconds=60,
        now=T0,
    )
    assert created.task is None
    firing.fire_all_due(
        db.uow, now=T0 + timedelta(minutes=1), policy=policy(), task_policy=TASK_POLICY
    )
    with db.uow() as uow:
        (workflow,) = uow.session.scalars(select(Workflow).where(Workflow.owner_id == owner))
        steps = {
            t.workflow_step: (t.id, t.schedule_id)
            for t in uow.session.scalars(select(Task).where(Task.owner_id == owner))
        }
        assert workflow.name == "nightly" and set(steps) == {"load", "extract"}
    assert steps["extract"][1] == uuid.UUID(created.id)
    assert steps["load"][1] is None
    runs = schedules.list_runs(db.uow(), owner_id=owner, schedule_id=uuid.UUID(created.id), first=5)
    assert [edge.node.id for edge in runs.edges] == [str(steps["extract"][0])]


def test_a_scheduled_workflow_with_a_cycle_is_refused_naming_it(db):
    with pytest.raises(schedules.InvalidSchedule) as raised:
        schedules.create_schedule(
            db.uow(),
            policy=policy(),
            task_policy=TASK_POLICY,
            owner_id=uuid.uuid4(),
            workflow={"steps": [_step("a", "b"), _step("b", "a")]},
            interval_seconds=60,
            now=T0,
        )
    assert "a → b → a" in raised.value.fields["workflow.steps"]
