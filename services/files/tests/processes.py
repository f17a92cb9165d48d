"""Real processes for the processing tests: relay, consumer, Celery worker and beat, with logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kombu import Connection

BIN = Path(sys.executable).parent


class ServiceProcess:
    """One process run as its own process group, its output appended to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        """Start it (again)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        """Whether it was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole group (a Celery worker's pool processes too), and reap it."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(15)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
        if not self.running:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def logs(self) -> str:
        """Everything it wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

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
