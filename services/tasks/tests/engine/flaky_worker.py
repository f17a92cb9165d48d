"""The tasks worker with a `flaky` notification channel that fails its first sends (retry tests).

Run as `celery -A services.tasks.tests.engine.flaky_worker:celery_app worker` with
NOTIFICATION_CHANNELS=flaky,log: the log line appears only once the flaky channel delivered.
FLAKY_COUNTER names a file counting the sends (pool processes share it), FLAKY_FAILURES how many
of them fail.
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.notifications import Notification, NotificationFailed, register_channel


class FlakyChannel:
    """Raises NotificationFailed on its first FLAKY_FAILURES sends, then delivers nothing."""

    def send(self, notification: Notification) -> None:
        """Count the send; fail while the count is within FLAKY_FAILURES."""
        counter = Path(os.environ["FLAKY_COUNTER"])
        calls = int(counter.read_text() or 0) if counter.exists() else 0
        counter.write_text(str(calls + 1))
        if calls < int(os.environ.get("FLAKY_FAILURES", "2")):
            raise NotificationFailed(f"flaky channel: send {calls + 1} fails")


register_channel("flaky", FlakyChannel)

# After the registration: the worker builds its notifier from NOTIFICATION_CHANNELS at import.
from services.tasks.worker import celery_app  # noqa: E402

__all__ = ["celery_app"]
