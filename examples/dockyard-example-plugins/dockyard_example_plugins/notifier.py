"""The `jsonl` notifier channel: appends each notification as one JSON line to a file."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

from shared.notifications import Notification, NotificationFailed

#: The file the channel appends to (the operator sets it where the channel runs).
PATH_VAR = "DOCKYARD_EXAMPLE_JSONL_PATH"


class JsonLinesNotifier:
    """Appends `{"user_id": ..., "status": ..., ...}` lines to $DOCKYARD_EXAMPLE_JSONL_PATH."""

    def __init__(self) -> None:
        self.path = os.environ.get(PATH_VAR, "notifications.jsonl")

    def send(self, notification: Notification) -> None:
        """Append one line; NotificationFailed (so Dockyard retries) when the file is unwritable."""
        line = json.dumps(asdict(notification), sort_keys=True, default=str)
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except OSError as exc:
            raise NotificationFailed(f"cannot append to {self.path}: {exc}") from exc
