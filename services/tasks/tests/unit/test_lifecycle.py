"""The transition table allows exactly the legal moves, and each move records what it should."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from services.tasks import events
from services.tasks.lifecycle import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    can_transition,
    container_name,
    is_finished,
    transition,
)
from services.tasks.models import Task, TaskStatus

S = TaskStatus
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LEGAL = {
    (S.PENDING, S.QUEUED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.SKIPPED),
    (S.PENDING, S.FAILED),
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.FAILED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.TIMED_OUT),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.QUEUED),
}
ALL_PAIRS = [(a, b) for a in S for b in S]


def a_task(status: TaskStatus = S.PENDING, **fields) -> Task:
    """An in-memory task (no database) with a secret in its env."""
    return Task(
        id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        name="job",
        image="busybox",
        command=["true"],
        env=[{"name": "TOKEN", "value": "s3cret"}],
        timeout_seconds=30,
        cpu_limit=1.0,
        memory_limit_mb=64,
        max_retries=0,
        status=status,
        attempts=fields.pop("attempts", 1),
        **fields,
    )


def test_the_table_covers_every_status():
    assert set(TRANSITIONS) == set(S)


def test_the_table_holds_exactly_the_legal_moves():
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == LEGAL


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
def test_a_legal_move_is_made(current, target):
    task = a_task(current)
    event = transition(task, target, now=NOW)
    assert task.status == target
    assert event.task_id == str(task.id) and event.owner_id == str(task.owner_id)


@pytest.mark.parametrize(("current", "target"), [p for p in ALL_PAIRS if p not in LEGAL])
def test_an_illegal_move_is_refused_and_changes_nothing(current, target):
    task = a_task(current)
    with pytest.raises(IllegalTransition) as info:
        transition(task, target, now=NOW)
    assert task.status == current
    assert (info.value.current, info.value.target) == (current, target)
    assert not can_transition(current, target)


def test_terminal_statuses_are_exactly_those_without_exits():
    assert {s for s, targets in TRANSITIONS.items() if not targets} == TERMINAL
    assert all(is_finished(s) for s in TERMINAL)
    assert not any(is_finished(s) for s in (S.PENDING, S.QUEUED, S.RUNNING))


def test_a_status_given_as_a_string_is_accepted():
    task = a_task(S.PENDING)
    assert isinstance(transition(task, "QUEUED", now=NOW), events.TaskQueued)


@pytest.mark.parametrize(
    ("current", "target", "event_type"),
    [
        (S.PENDING, S.QUEUED, events.TaskQueued),
        (S.QUEUED, S.RUNNING, events.TaskStarted),
        (S.RUNNING, S.SUCCEEDED, events.TaskSucceeded),
        (S.RUNNING, S.FAILED, events.TaskFailed),
        (S.RUNNING, S.TIMED_OUT, events.TaskTimedOut),
        (S.RUNNING, S.CANCELLED, events.TaskCancelled),
        (S.PENDING, S.SKIPPED, events.TaskSkipped),
        (S.RUNNING, S.QUEUED, events.TaskQueued),
    ],
)
def test_each_move_records_its_event_without_env_values(current, target, event_type):
    event = transition(a_task(current), target, now=NOW)
    assert type(event) is event_type
    assert event.aggregate_type == "task" and event.aggregate_id == event.task_id
    assert "s3cret" not in repr(dataclasses.asdict(event))


def test_queueing_stamps_queued_at_and_forgets_the_last_container():
    task = a_task(S.RUNNING, container_name="old", container_id="abc", heartbeat_at=NOW)
    event = transition(task, S.QUEUED, now=NOW)
    assert task.queued_at == NOW
    assert (task.container_name, task.container_id, task.heartbeat_at) == (None, None, None)
    assert event.attempts == 1


def test_starting_stamps_started_at_and_names_the_container():
    task = a_task(S.QUEUED, attempts=2)
    name = container_name(task.id, 2)
    event = transition(task, S.RUNNING, now=NOW, container=name)
    assert (task.started_at, task.heartbeat_at, task.container_name) == (NOW, NOW, name)
    assert (event.attempt, event.container_name) == (2, name)


def test_finishing_stamps_finished_at_and_records_the_outcome():
    task = a_task(S.RUNNING, heartbeat_at=NOW)
    event = transition(
        task, S.FAILED, now=NOW, exit_code=2, error_code="NON_ZERO_EXIT", error="Exited with 2."
    )
    assert (task.finished_at, task.heartbeat_at) == (NOW, None)
    outcome = (2, "NON_ZERO_EXIT", "Exited with 2.")
    assert (task.exit_code, task.error_code, task.error) == outcome
    assert (event.exit_code, event.error_code, event.error) == outcome


def test_a_timeout_says_so_when_the_engine_gives_no_reason():
    task = a_task(S.RUNNING)
    event = transition(task, S.TIMED_OUT, now=NOW)
    assert task.error_code == "TIMED_OUT"
    assert task.error == "Timed out after 30 seconds."
    assert event.timeout_seconds == 30


def test_container_names_are_deterministic_and_differ_per_attempt():
    task_id = uuid.uuid4()
    assert container_name(task_id, 1) == container_name(str(task_id), 1)
    assert container_name(task_id, 1) != container_name(task_id, 2)
    assert str(task_id) in container_name(task_id, 1)


def test_a_task_repr_never_shows_its_env():
    assert "s3cret" not in repr(a_task())
