"""A start that gave its free slot to a fairer task waits on for its own; it is not settled."""

from __future__ import annotations

import uuid

import pytest

from services.tasks import launcher, transitions

SETTINGS = transitions.ExecutionSettings(
    concurrency=1,
    slot_wait_seconds=60,
    log_max_bytes=1024,
    retry_backoff_seconds=1,
    retry_backoff_max_seconds=1,
    engine_retries=0,
)


class RecordedSlots:
    """A slot signal that signals every wait at once and records what happened."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    def take_turn(self, timeout: float) -> bool:
        return False

    def forget(self) -> None:
        pass

    def looked(self, outcome: str, *, signalled: bool) -> None:
        self.steps.append(f"{outcome}{'*' if signalled else ''}")

    def wait(self, timeout: float) -> bool:
        self.steps.append("wait")
        return True


@pytest.fixture
def looks(monkeypatch):
    """Make start_attempt answer the given outcomes in turn."""

    def answer(*outcomes: str) -> None:
        pending = list(outcomes)
        monkeypatch.setattr(launcher, "start_attempt", lambda *_a, **_k: pending.pop(0))

    return answer


def _start(slots, **options) -> str:
    return launcher.start_when_free(
        lambda: None, task_id=uuid.uuid4(), engine=None, settings=SETTINGS, slots=slots, **options
    )


def test_a_start_that_yielded_unasked_looks_again_at_once_and_one_woken_waits(looks):
    looks("yielded", "busy", "yielded", "started")
    slots = RecordedSlots()
    assert _start(slots) == "started"
    # Unasked, another slot may be free: no wait. Woken, the ticket went to the fairer task.
    assert slots.steps == ["yielded", "busy", "wait", "yielded*", "wait", "started*"]


def test_a_start_that_keeps_yielding_is_handed_on_busy_when_its_wait_runs_out(looks):
    looks("yielded")
    assert _start(RecordedSlots(), stopping=lambda: True) == "busy"
