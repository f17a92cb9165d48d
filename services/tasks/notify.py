"""Telling a task's owner it reached a terminal state, through the shared Notifier interface."""

from __future__ import annotations

from shared.notifications import Notification, Notifier


def notify_task_finished(
    notifier: Notifier, *, user_id: str, task_id: str, task_label: str, status: str
) -> None:
    """Tell a task's owner it ended SUCCEEDED, FAILED, TIMED_OUT or CANCELLED."""
    notifier.send(
        Notification(
            user_id=user_id,
            subject_type="task",
            subject_id=task_id,
            subject_name=task_label,
            status=status,
        )
    )
