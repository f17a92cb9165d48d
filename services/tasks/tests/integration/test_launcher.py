"""Slots and their signal: a busy engine refuses a claim, and a finished attempt wakes waiters."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from services.tasks import transitions
from services.tasks.containers import ContainerInfo
from services.tasks.launcher import Listener, SlotGate
from services.tasks.models import LogStream, Task, TaskStatus
from services.tasks.tests.factories import create_task, move_task, outbox_events, task_in
from shared.messaging.runtime import Stopper


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


def test_a_freed_slot_wakes_one_waiting_start_of_the_launcher_not_every_one(tasks_app):
    gate = SlotGate(
        tasks_app.extensions["tasks"].database, transitions.SLOT_FREED_CHANNEL, waiters=3
    )
    stopper = Stopper()
    follower = threading.Thread(target=gate.follow, args=(stopper,))
    follower.start()
    woken: list[bool] = []
    waiters = [threading.Thread(target=lambda: woken.append(gate.wait(3))) for _ in range(3)]
    try:
        time.sleep(1)  # the follower listens and the waiters wait
        for waiter in waiters:
            waiter.start()
        time.sleep(0.3)
        _notify(tasks_app, transitions.SLOT_FREED_CHANNEL)
        for waiter in waiters:
            waiter.join()
    finally:
        stopper.stop()
        follower.join()
    assert sorted(woken) == [False, False, True]


def test_an_attempts_last_output_and_its_end_raise_one_event(tasks_app, client, alice):
    uow = tasks_app.extensions["tasks"].uow
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    [attempt] = [a for a in transitions.running_attempts(uow()) if str(a.task_id) == task["id"]]
    before = len(outbox_events(tasks_app, task["id"]))
    transitions.finish_attempt(
        uow(),
        task_id=attempt.task_id,
        name=attempt.container_name,
        outcome=transitions.Outcome(TaskStatus.SUCCEEDED, 0),
        settings=_full(tasks_app),
        output={LogStream.STDOUT: b"last words\n"},
    )
    # The readers of the output wake on TaskSucceeded as well, and find the output stored.
    assert [e["type"] for e in outbox_events(tasks_app, task["id"])[before:]] == ["TaskSucceeded"]
    logs = client.get(f"/v1/tasks/{task['id']}/logs", headers=alice.headers).get_json()
    assert "last words" in logs["text"]


def test_output_stored_after_the_attempt_moved_on_is_still_announced(tasks_app, client, alice):
    uow = tasks_app.extensions["tasks"].uow
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    [attempt] = [a for a in transitions.running_attempts(uow()) if str(a.task_id) == task["id"]]
    client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    move_task(tasks_app, task["id"], TaskStatus.CANCELLED)
    before = len(outbox_events(tasks_app, task["id"]))
    transitions.finish_attempt(
        uow(),
        task_id=attempt.task_id,
        name=attempt.container_name,
        outcome=transitions.Outcome(TaskStatus.SUCCEEDED, 0),
        settings=_full(tasks_app),
        output={LogStream.STDOUT: b"late\n"},
    )
    events = outbox_events(tasks_app, task["id"])[before:]
    assert [e["type"] for e in events] == ["TaskOutputAppended"]


def test_once_the_slots_are_full_a_new_start_waits_for_a_freed_one_before_claiming(tasks_app):
    gate = SlotGate(
        tasks_app.extensions["tasks"].database, transitions.SLOT_FREED_CHANNEL, waiters=2
    )
    assert gate.take_turn(5) is False  # nothing known yet: look at once
    gate.looked("busy", signalled=False)
    started = time.monotonic()
    assert gate.take_turn(0.3) is False
    assert time.monotonic() - started >= 0.3
    gate._issue(1)
    assert gate.take_turn(5) is True
    # A start after the ticket leaves the slots full; one found without a ticket does not.
    gate.looked("start", signalled=True)
    assert gate.full
    gate.looked("start", signalled=False)
    assert not gate.full
    assert gate.take_turn(5) is False


def test_a_task_that_must_wait_for_a_slot_is_announced_queued_one_that_starts_at_once_is_not(
    tasks_app, client, alice
):
    uow = tasks_app.extensions["tasks"].uow
    full = _full(tasks_app)
    waiting = create_task(client, alice)
    claim = transitions.claim_attempt(uow(), task_id=uuid.UUID(waiting["id"]), settings=full)
    assert claim.outcome == "busy"
    assert [e["type"] for e in outbox_events(tasks_app, waiting["id"])] == [
        "TaskCreated",
        "TaskQueued",
    ]
    roomy = replace(full, concurrency=full.concurrency + 2)
    at_once = create_task(client, alice)
    claim = transitions.claim_attempt(uow(), task_id=uuid.UUID(at_once["id"]), settings=roomy)
    assert claim.outcome == "start"
    assert [e["type"] for e in outbox_events(tasks_app, at_once["id"])] == ["TaskCreated"]
    assert client.get(f"/v1/tasks/{at_once['id']}", headers=alice.headers).json["status"] == (
        "QUEUED"
    )


def test_recording_a_start_twice_returns_the_same_attempt_and_announces_it_once(
    tasks_app, client, alice
):
    uow = tasks_app.extensions["tasks"].uow
    settings = replace(_full(tasks_app), concurrency=10_000)
    task = create_task(client, alice)
    claim = transitions.claim_attempt(uow(), task_id=uuid.UUID(task["id"]), settings=settings)
    container = ContainerInfo(id="c1", name=claim.spec.name, status="running")
    started_at = datetime.now(UTC)
    first = transitions.mark_running(
        uow(), task_id=claim.spec.task_id, container=container, started_at=started_at
    )
    second = transitions.mark_running(
        uow(), task_id=claim.spec.task_id, container=container, started_at=datetime.now(UTC)
    )
    assert first == second
    assert first.started_at == started_at
    assert [e["type"] for e in outbox_events(tasks_app, task["id"])].count("TaskStarted") == 1
    assert [a for a in transitions.running_attempts(uow()) if a.task_id == first.task_id] == [first]


def test_a_freed_slot_goes_to_an_owner_holding_none_not_to_the_claimers_busy_owner(
    tasks_app, client, alice, bob
):
    uow = tasks_app.extensions["tasks"].uow
    running = create_task(client, alice)
    move_task(tasks_app, running["id"], TaskStatus.QUEUED, TaskStatus.RUNNING)
    one_free = replace(_full(tasks_app), concurrency=_full(tasks_app).concurrency + 1)
    backlog = create_task(client, alice)
    first = create_task(client, bob)

    claim = transitions.claim_attempt(uow(), task_id=uuid.UUID(backlog["id"]), settings=one_free)
    # The slot went to a task whose owner held none (bob's, or an older one left by another
    # test); alice's backlog task waits on, announced QUEUED, for its start job's next look.
    assert claim.outcome == "start"
    assert claim.spec.owner_id != uuid.UUID(alice.id)
    assert task_in_status(client, backlog["id"]) == ("QUEUED", None)
    assert [e["type"] for e in outbox_events(tasks_app, backlog["id"])] == [
        "TaskCreated",
        "TaskQueued",
    ]
    # Among owners holding as many slots, the claimer's own task goes first.
    roomy = replace(one_free, concurrency=one_free.concurrency + 1)
    claim = transitions.claim_attempt(uow(), task_id=uuid.UUID(first["id"]), settings=roomy)
    assert (claim.outcome, str(claim.spec.task_id)) == ("start", first["id"])


def task_in_status(client, task_id) -> tuple[str, str | None]:
    """The task's status and its current attempt's container name, as stored."""
    with client.application.extensions["tasks"].uow() as uow:
        task = uow.session.get(Task, uuid.UUID(task_id))
        return task.status, task.container_name
