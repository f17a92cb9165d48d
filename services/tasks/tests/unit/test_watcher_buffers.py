"""A watcher holds at most the log cap of each stream in memory, and counts what it let go."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.tasks.containers import ContainerOutput
from services.tasks.models import LogStream
from services.tasks.transitions import ExecutionSettings, RunningAttempt
from services.tasks.watcher import Watcher

CAP = 1000


class _ExitedContainer:
    """The one engine call a watcher's last read makes, answering a bounded read."""

    def __init__(self, output: ContainerOutput) -> None:
        self.output = output
        self.asked: list[int] = []

    def read_output(self, name: str, *, max_bytes: int) -> ContainerOutput:
        self.asked.append(max_bytes)
        return self.output


def _watcher(engine=None) -> Watcher:
    now = datetime.now(UTC)
    attempt = RunningAttempt(uuid.uuid4(), "c", now, now, cancel_requested=False)
    settings = ExecutionSettings(
        concurrency=1,
        slot_wait_seconds=1,
        log_max_bytes=CAP,
        retry_backoff_seconds=1,
        retry_backoff_max_seconds=1,
        engine_retries=0,
    )
    return Watcher(
        attempt,
        engine=engine,
        uow=None,
        settings=settings,
        flush_seconds=1,
        sample_seconds=1,
        on_done=lambda _watcher: None,
        fresh=True,
    )


def test_output_followed_faster_than_it_is_stored_keeps_only_the_cap():
    watcher = _watcher()
    for n in range(100):
        watcher._take(LogStream.STDOUT, b"%099d\n" % n)
    buffer = watcher.buffers[LogStream.STDOUT]
    assert len(buffer) == CAP
    assert bytes(buffer).endswith(b"%099d\n" % 99)
    assert watcher.lost[LogStream.STDOUT] == 100 * 100 - CAP
    assert watcher.received[LogStream.STDOUT] == 100 * 100


def test_the_last_read_asks_for_the_cap_and_counts_what_it_never_saw():
    engine = _ExitedContainer(
        ContainerOutput(
            data={"stdout": b"x" * CAP, "stderr": b"late\n"},
            total={"stdout": 50_000, "stderr": 5},
        )
    )
    watcher = _watcher(engine)
    watcher._take(LogStream.STDOUT, b"a" * 100)  # what a follower delivered before the end
    watcher._read_rest()
    assert engine.asked == [CAP]
    # Never read (48,900 bytes), then the follower's 100 pushed out by the newest CAP bytes.
    assert watcher.lost[LogStream.STDOUT] == 50_000 - CAP
    assert watcher.received == {LogStream.STDOUT: 50_000, LogStream.STDERR: 5}
    assert bytes(watcher.buffers[LogStream.STDERR]) == b"late\n"
    assert bytes(watcher.buffers[LogStream.STDOUT]) == b"x" * CAP
