"""Telling users their tasks finished: one function to swap for the shared Notifier interface."""

from __future__ import annotations

import logging

log = logging.getLogger("dockyard.notifications")


def notify_task_finished(*, user_id: str, task_label: str, status: str) -> None:
    """Send the lifecycle notification of a finished task (logged until a notifier exists)."""
    # shared/notifications.py (Notifier protocol, LogNotifier) is being written elsewhere; this
    # is the one call site to point at it.
    log.info("Notification sent to user %s about task %s: %s", user_id, task_label, status)
