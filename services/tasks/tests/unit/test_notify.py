"""A finished task is announced to its owner through the shared notifier, named or by its id."""

from __future__ import annotations

import logging
import uuid

import pytest

from services.tasks import dispatch, handlers
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
    ("event_type", "status"),
    [
        ("TaskSucceeded", "SUCCEEDED"),
        ("TaskFailed", "FAILED"),
        ("TaskTimedOut", "TIMED_OUT"),
        ("TaskCancelled", "CANCELLED"),
    ],
)
def test_a_terminal_event_queues_the_owners_notification_under_the_tasks_name(
    monkeypatch, event_type, status
):
    sent = []
    monkeypatch.setattr(dispatch, "send_notification", lambda **kwargs: sent.append(kwargs))
    envelope = finished(event_type, name="nightly")
    handlers.on_task_finished(envelope, None)
    assert sent == [
        {
            "user_id": "u-1",
            "task_id": envelope.aggregate_id,
            "task_label": "nightly",
            "status": status,
        }
    ]


def test_a_nameless_task_is_announced_by_its_id(monkeypatch):
    sent = []
    monkeypatch.setattr(dispatch, "send_notification", lambda **kwargs: sent.append(kwargs))
    envelope = finished("TaskFailed", name=None)
    handlers.on_task_finished(envelope, None)
    task_id = envelope.aggregate_id
    assert sent == [
        {"user_id": "u-1", "task_id": task_id, "task_label": task_id, "status": "FAILED"}
    ]
