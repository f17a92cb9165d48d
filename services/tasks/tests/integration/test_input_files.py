"""A task with an input file: the saga that asks files for the lease, and what its replies do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from services.tasks import service, transitions
from services.tasks.models import Task, TaskStatus
from services.tasks.sagas import tasks_sagas
from services.tasks.tests.factories import create_task, outbox_events
from shared.events import Envelope

SETTINGS = transitions.ExecutionSettings(
    concurrency=10_000,
    slot_wait_seconds=1,
    log_max_bytes=1024,
    retry_backoff_seconds=1,
    retry_backoff_max_seconds=1,
    engine_retries=0,
)


def _reply(routing_key: str, **payload) -> Envelope:
    source, _, kind = routing_key.partition(".")
    return Envelope(
        id=str(uuid.uuid4()),
        type=kind,
        version=1,
        source=source,
        occurred_at=datetime.now(UTC).isoformat(),
        aggregate_type="file",
        aggregate_id=payload["file_id"],
        sequence=1,
        correlation_id=None,
        payload=payload,
    )


def _saga(app, task_id: str):
    with app.extensions["tasks"].database.connect() as connection:
        return connection.execute(
            text("SELECT id, state, step, reason FROM sagas WHERE subject = :t"), {"t": task_id}
        ).one()


def _handle(app, envelope: Envelope) -> None:
    uow = app.extensions["tasks"].uow()
    with uow:
        tasks_sagas().handle_reply(envelope, uow.session)
        uow.commit()


def _task(app, task_id: str) -> Task:
    uow = app.extensions["tasks"].uow()
    with uow:
        task = uow.session.get(Task, uuid.UUID(task_id))
        uow.session.expunge(task)
        return task


@pytest.fixture
def waiting(tasks_app, client, alice):
    """A new task of alice's with an input file, and that file's id."""
    file_id = str(uuid.uuid4())
    return create_task(client, alice, input_file_id=file_id), file_id


def test_a_task_with_an_input_file_waits_pending_while_files_is_asked_for_the_lease(
    tasks_app, alice, waiting
):
    task, file_id = waiting
    assert (task["status"], task["input_file_id"]) == ("PENDING", file_id)
    saga_id, state, step, _reason = _saga(tasks_app, task["id"])
    assert (state, step) == ("RUNNING", "lease")
    events = {event["type"]: event for event in outbox_events(tasks_app, task["id"])}
    assert set(events) == {"TaskCreated", "InputFileLeaseRequested"}
    assert events["InputFileLeaseRequested"]["payload"] == {
        "saga_id": str(saga_id),
        "task_id": task["id"],
        "owner_id": alice.id,
        "file_id": file_id,
    }
    claim = transitions.claim_attempt(
        tasks_app.extensions["tasks"].uow(), task_id=uuid.UUID(task["id"]), settings=SETTINGS
    )
    assert claim.outcome == "done"
    assert _task(tasks_app, task["id"]).status == TaskStatus.PENDING


def test_the_granted_lease_records_the_file_and_hands_the_task_to_the_launcher(tasks_app, waiting):
    task, file_id = waiting
    saga_id = str(_saga(tasks_app, task["id"])[0])
    leased = _reply(
        "files.InputFileLeased",
        saga_id=saga_id,
        task_id=task["id"],
        file_id=file_id,
        filename="notes.txt",
        size=12,
    )
    _handle(tasks_app, leased)
    _handle(tasks_app, leased)  # a redelivery changes nothing
    stored = _task(tasks_app, task["id"])
    assert (stored.input_filename, stored.input_size, stored.status) == ("notes.txt", 12, "PENDING")
    assert _saga(tasks_app, task["id"])[1:3] == ("SUCCEEDED", "launch")
    ready = [e for e in outbox_events(tasks_app, task["id"]) if e["type"] == "TaskInputReady"]
    assert [e["payload"]["filename"] for e in ready] == ["notes.txt"]


def test_a_refused_lease_fails_the_task_with_the_reason_and_asks_for_a_release(tasks_app, waiting):
    task, file_id = waiting
    saga_id = str(_saga(tasks_app, task["id"])[0])
    _handle(
        tasks_app,
        _reply(
            "files.InputFileLeaseRefused",
            saga_id=saga_id,
            task_id=task["id"],
            file_id=file_id,
            reason="file is UPLOADED, not PROCESSED",
        ),
    )
    stored = _task(tasks_app, task["id"])
    assert (stored.status, stored.error_code) == ("FAILED", "INPUT_FILE_UNAVAILABLE")
    assert "file is UPLOADED, not PROCESSED" in stored.error
    assert _saga(tasks_app, task["id"])[1:] == (
        "FAILED",
        "lease",
        "file is UPLOADED, not PROCESSED",
    )
    types = [e["type"] for e in outbox_events(tasks_app, task["id"])]
    assert types[-2:] == ["TaskFailed", "InputFileReleaseRequested"]


def test_a_lease_granted_to_a_task_cancelled_meanwhile_is_released(tasks_app, alice, waiting):
    task, file_id = waiting
    service.cancel_task(
        tasks_app.extensions["tasks"].uow(),
        owner_id=uuid.UUID(alice.id),
        task_id=uuid.UUID(task["id"]),
    )
    saga_id = str(_saga(tasks_app, task["id"])[0])
    _handle(
        tasks_app,
        _reply(
            "files.InputFileLeased",
            saga_id=saga_id,
            task_id=task["id"],
            file_id=file_id,
            filename="notes.txt",
            size=12,
        ),
    )
    assert _task(tasks_app, task["id"]).status == "CANCELLED"
    types = [e["type"] for e in outbox_events(tasks_app, task["id"])]
    assert types[-1] == "InputFileReleaseRequested"
    assert "TaskInputReady" not in types


def test_a_lease_never_answered_fails_the_task_once_its_attempts_are_used(tasks_app, waiting):
    task, _file_id = waiting
    database = tasks_app.extensions["tasks"].database
    sagas = tasks_sagas()
    attempts = sagas.definition("task_input_file").step("lease").attempts
    for _ in range(attempts):
        with database.begin() as connection:
            connection.execute(
                text("UPDATE sagas SET deadline = now() - interval '1 second' WHERE subject = :t"),
                {"t": task["id"]},
            )
        sagas.sweep(database)
    assert _saga(tasks_app, task["id"])[1] == "FAILED"
    stored = _task(tasks_app, task["id"])
    assert stored.status == "FAILED"
    assert "timed out" in stored.error
    asked = [
        e for e in outbox_events(tasks_app, task["id"]) if e["type"] == "InputFileLeaseRequested"
    ]
    assert len(asked) == attempts
