"""A finished task is announced to its owner (through the shared notifier), named or by its id."""

from __future__ import annotations

import logging
import uuid

import pytest

from services.tasks.notifications.kinds import ROUTING_KEYS, occurrence_of
from services.tasks.notify import notify_task_finished
from shared.events import Envelope
from shared.notifications import Notification, build_notifier


class Collecting:
    """A notification channel that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        """Keep the notification."""
        self.sent.append(notification)


def finished(event_type: str, **payload: str | None) -> Envelope:
    """The envelope of a terminal-state event of one task."""
    task_id = str(uuid.uuid4())
    return Envelope(
        id=str(uuid.uuid4()),
        type=event_type,
        version=1,
        source="tasks",
        occurred_at="2026-11-22T12:00:00+00:00",
        aggregate_type="task",
        aggregate_id=task_id,
        sequence=1,
        correlation_id=None,
        payload={"task_id": task_id, "owner_id": "u-1", **payload},
    )


def test_the_log_channel_says_who_is_told_about_which_task_and_how_it_ended(caplog):
    caplog.set_level(logging.INFO, logger="dockyard.notifications")
    notify_task_finished(
        build_notifier(["log"]), user_id="u-1", task_id="t-1", task_label="nightly", status="FAILED"
    )
    assert [r.getMessage() for r in caplog.records] == [
        "Notification sent to user u-1 about task nightly: FAILED"
    ]


def test_every_channel_receives_the_task_with_its_id_and_label():
    channel = Collecting()
    notify_task_finished(
        channel, user_id="u-1", task_id="t-1", task_label="nightly", status="SUCCEEDED"
    )
    assert channel.sent == [
        Notification(
            user_id="u-1",
            subject_type="task",
            subject_id="t-1",
            subject_name="nightly",
            status="SUCCEEDED",
        )
    ]


@pytest.mark.parametrize(
    ("event_type", "kind", "status", "words"),
    [
        ("TaskSucceeded", "TASK_SUCCEEDED", "SUCCEEDED", "succeeded"),
        ("TaskFailed", "TASK_FAILED", "FAILED", "failed"),
        ("TaskTimedOut", "TASK_FAILED", "TIMED_OUT", "timed out"),
    ],
)
def test_a_terminal_event_is_told_to_the_owner_under_the_tasks_name(
    event_type, kind, status, words
):
    envelope = finished(event_type, name="nightly")
    occurrence = occurrence_of(envelope)
    assert occurrence.event == kind
    assert occurrence.owner_id == "u-1"
    assert occurrence.subject == f"Task nightly {words}"
    assert occurrence.subject_id == envelope.aggregate_id
    assert occurrence.details == {
        "subject_type": "task",
        "subject_name": "nightly",
        "status": status,
    }


def test_a_cancelled_task_notifies_nobody():
    assert "tasks.TaskCancelled" not in ROUTING_KEYS


def test_a_nameless_task_is_announced_by_its_id():
    envelope = finished("TaskFailed", name=None)
    task_id = envelope.aggregate_id
    assert occurrence_of(envelope).subject == f"Task {task_id} failed"


def test_files_and_schedule_events_notify_their_kinds():
    assert ROUTING_KEYS["files.FileProcessed"] == "FILE_PROCESSED"
    assert ROUTING_KEYS["files.FileProcessingFailed"] == "FILE_FAILED"
    assert ROUTING_KEYS["tasks.ScheduleMisfired"] == "SCHEDULE_MISFIRED"
    misfired = Envelope(
        id=str(uuid.uuid4()),
        type="ScheduleMisfired",
        version=1,
        source="tasks",
        occurred_at="2026-11-22T12:00:00+00:00",
        aggregate_type="schedule",
        aggregate_id="s-1",
        sequence=1,
        correlation_id=None,
        payload={"schedule_id": "s-1", "owner_id": "u-1", "missed": 3},
    )
    assert occurrence_of(misfired).subject == "Schedule s-1 missed 3 fire times"


def test_a_finished_workflow_notifies_workflow_finished_naming_its_failed_step():
    assert ROUTING_KEYS["tasks.WorkflowFinished"] == "WORKFLOW_FINISHED"
    finished = Envelope(
        id=str(uuid.uuid4()),
        type="WorkflowFinished",
        version=1,
        source="tasks",
        occurred_at="2026-11-22T12:00:00+00:00",
        aggregate_type="workflow",
        aggregate_id="w-1",
        sequence=1,
        correlation_id=None,
        payload={
            "workflow_id": "w-1",
            "owner_id": "u-1",
            "name": "nightly",
            "status": "FAILED",
            "failed_step": "build",
        },
    )
    occurrence = occurrence_of(finished)
    assert (occurrence.event, occurrence.subject_id) == ("WORKFLOW_FINISHED", "w-1")
    assert occurrence.subject == "Workflow nightly failed at step build"
    assert occurrence.details["subject_type"] == "workflow"
