"""Slots and their signal: a busy engine refuses a claim, and a finished attempt wakes waiters."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from services.tasks import transitions
from services.tasks.launcher import Listener
from services.tasks.models import TaskStatus
from services.tasks.tests.factories import create_task, move_task


def _full(app) -> transitions.ExecutionSettings:
    """Settings whose slots the tasks holding one now fill exactly (other tests leave some)."""
    with app.extensions["tasks"].database.connect() as connection:
        busy = connection.scalar(
            text(
                "SELECT count(*) FROM tasks WHERE status = 'RUNNING'"
                " OR (status = 'QUEUED' AND container_name IS NOT NULL)"
            )
        )
    return transitions.ExecutionSettings(
        concurrency=busy,
        slot_wait_seconds=1,
        log_max_bytes=1024,
        retry_backoff_seconds=1,
        retry_backoff_max_seconds=1,
        engine_retries=0,
    )


@pytest.fixture
def slots(tasks_app):
    """A listener on the channel that freed slots signal."""
    listener = Listener(tasks_app.extensions["tasks"].database, transitions.SLOT_FREED_CHANNEL)
    listener.forget()
    yield listener
    listener.close()


def _notify(app, channel: str) -> None:
    with app.extensions["tasks"].database.begin() as connection:
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


def test_a_listener_without_a_signal_times_out(slots):
    assert slots.wait(0.05) is False


def test_a_signal_sent_before_the_wait_is_not_missed(tasks_app, slots):
    _notify(tasks_app, transitions.SLOT_FREED_CHANNEL)
    assert slots.wait(5) is True
    assert slots.wait(0.05) is False


def test_a_claim_waits_while_every_slot_is_taken_and_a_finished_attempt_signals_a_free_one(
    tasks_app, client, alice, slots
):
    uow = tasks_app.extensions["tasks"].uow
    running = create_task(client, alice)
    move_task(tasks_app, running["id"], TaskStatus.QUEUED, TaskStatus.RUNNING)
    full = _full(tasks_app)
    waiting = uuid.UUID(create_task(client, alice)["id"])
    assert transitions.claim_attempt(uow(), task_id=waiting, settings=full).outcome == "busy"
    slots.forget()

    [attempt] = [a for a in transitions.running_attempts(uow()) if str(a.task_id) == running["id"]]
    transitions.finish_attempt(
        uow(),
        task_id=attempt.task_id,
        name=attempt.container_name,
        outcome=transitions.Outcome(TaskStatus.SUCCEEDED, 0),
        settings=full,
        output={"stdout": b"done\n"},
    )

    assert slots.wait(5) is True
    claim = transitions.claim_attempt(uow(), task_id=waiting, settings=full)
    assert claim.outcome == "start"
    assert claim.spec.attempt == 1
