"""Real processes for the processing tests: relay, consumer, Celery worker and beat, with logs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kombu import Connection

from shared.processes import ManagedProcess

BIN = Path(sys.executable).parent


class ServiceProcess(ManagedProcess):
    """A harness process whose log lives in the test's log folder, read as JSON records too."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        super().__init__(name, argv, env=env, log=log_dir / f"{name}.log")

    def log_records_since(self, offset: int = 0) -> list[dict]:
        """Its JSON log lines after character `offset`, parsed (other lines are skipped)."""
        records = []
        for line in self.logs()[offset:].splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def wait_for_log(self, text: str, *, timeout: float = 30, since: int = 0) -> None:
        """Wait until `text` appears in the log after character `since`."""
        wait_until(
            lambda: text in self.logs()[since:], timeout=timeout, what=f"{self.name}: {text}"
        )


def wait_until(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    """Poll `condition` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def queue_exists(amqp_url: str, queue: str) -> bool:
    """Whether the broker has this queue (a passive declare)."""
    with Connection(amqp_url, connect_timeout=5) as connection:
        try:
            connection.default_channel.queue_declare(queue=queue, passive=True)
        except Exception:  # noqa: BLE001 - NotFound closes the channel; any failure means no
            return False
    return True
