"""The one harness tests and benchmarks run Dockyard processes with.

A `ManagedProcess` is spawned with an environment, in its own process group (a Celery worker's
pool or a gunicorn master's workers go with it), its stdout and stderr appended to a log file;
`wait_ready` waits until an HTTP URL answers 200, a line appears in that log or a check of the
caller's passes (a CLI that asks the process, say), failing with the log's tail if the process
exits first; `stop` sends SIGTERM, then SIGKILL after a timeout. As a context manager it starts
on entry and stops on exit.

    with ManagedProcess("relay", [dockyard, "relay", "auth"], env=env, log=path) as relay:
        relay.wait_ready(log_line="relay started")
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

#: How much of the log a start-up failure quotes.
LOG_TAIL = 3000


def answers_ok(url: str) -> bool:
    """Whether GET `url` answers 200 right now (connection errors are a no)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=1)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class ManagedProcess:
    """One subprocess with its log file; see the module docstring."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        log: Path | None = None,
        cwd: Path | str | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.env = env
        self.cwd = cwd
        self._own_log = log is None
        if log is None:
            fd, path = tempfile.mkstemp(prefix=f"dockyard-{name}-", suffix=".log")
            os.close(fd)
            log = Path(path)
        self.log_path = log
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The process id (of the group leader)."""
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether it was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> ManagedProcess:
        """Start it (again, after a stop or a kill), appending to the same log."""
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def logs(self) -> str:
        """Everything it wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(
        self,
        *,
        url: str | None = None,
        log_line: str | None = None,
        until: Callable[[], bool] | None = None,
        timeout: float = 30,
    ) -> ManagedProcess:
        """Wait until each given check holds (`url` 200, `log_line` logged, `until()`), or fail."""
        checks: list[Callable[[], bool]] = []
        if url is not None:
            checks.append(lambda: answers_ok(url))
        if log_line is not None:
            checks.append(lambda: log_line in self.logs())
        if until is not None:
            checks.append(until)
        deadline = time.monotonic() + timeout
        while not all(check() for check in checks):
            if not self.running or time.monotonic() > deadline:
                state = "exited" if not self.running else f"was not ready after {timeout:g} s"
                raise RuntimeError(f"{self.name} {state}:\n{self.logs()[-LOG_TAIL:]}")
            time.sleep(0.05)
        return self

    def signal(self, signum: int) -> None:
        """Send `signum` to its whole process group (SIGSTOP and SIGCONT included)."""
        assert self.process is not None, f"{self.name} was never started"
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the group, and reap the process."""
        if self.process is None:
            return
        self.signal(signal.SIGKILL)
        self.process.wait(15)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM (after SIGCONT, should it be stopped), then SIGKILL after `timeout` seconds.

        Returns the exit status (negative: the signal that ended it), None if never started.
        """
        if self.process is None:
            return None
        if self.running:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.wait()

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)


def stop_all(processes: Sequence[ManagedProcess], timeout: float = 15) -> None:
    """SIGTERM every process at once, then wait for each (SIGKILL after `timeout` seconds)."""
    for process in processes:
        if process.running:
            process.signal(signal.SIGCONT)
            process.signal(signal.SIGTERM)
    # Only wait now: a second SIGTERM could reach a process after its handler ran and stopped
    # listening, and end it by the signal instead of its own clean exit.
    deadline = time.monotonic() + timeout
    for process in processes:
        if process.process is None:
            continue
        try:
            process.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
