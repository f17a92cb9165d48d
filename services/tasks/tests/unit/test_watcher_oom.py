"""A SIGKILLed container counts as OOM-killed once the engine reports it, even late."""

from __future__ import annotations

import threading

from services.tasks.containers import ContainerInfo
from services.tasks.tests.unit.test_watcher_buffers import _watcher

KILLED = {"ExitCode": 137, "OOMKilled": False}


class _LateOomEngine:
    """An engine whose inspect says OOMKilled only from its `after`-th answer on."""

    def __init__(self, after: int | None) -> None:
        self.after, self.inspected = after, 0

    def inspect(self, name: str) -> ContainerInfo:
        self.inspected += 1
        oom = self.after is not None and self.inspected >= self.after
        return ContainerInfo(id="c", name=name, status="exited", state={**KILLED, "OOMKilled": oom})


def test_an_oom_kill_the_engine_records_after_the_exit_is_still_read():
    engine = _LateOomEngine(after=3)
    assert _watcher(engine)._exit_state(dict(KILLED))["OOMKilled"] is True
    assert engine.inspected == 3


def test_an_oom_event_beside_a_sigkill_nobody_here_sent_is_an_oom_kill():
    watcher = _watcher(_LateOomEngine(after=None))
    # The event comes while the watcher waits for the engine to say so.
    threading.Timer(0.2, watcher.ran_out_of_memory).start()
    assert watcher._exit_state(dict(KILLED))["OOMKilled"] is True


def test_a_sigkill_without_any_oom_report_stays_a_plain_exit():
    watcher = _watcher(_LateOomEngine(after=None))
    assert watcher._exit_state(dict(KILLED))["OOMKilled"] is False


def test_a_kill_of_our_own_is_never_read_as_oom():
    watcher = _watcher(_LateOomEngine(after=1))
    watcher.ran_out_of_memory()
    watcher.killed_for = "timeout"
    assert watcher._exit_state(dict(KILLED)) == KILLED
