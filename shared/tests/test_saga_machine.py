"""The saga state machine on its own: steps, replies, timeouts, compensations, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.sagas import machine
from shared.sagas.machine import SagaDefinition, SagaRecord, SagaState, Step

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Journal:
    """Records what the steps' actions and compensations did, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.broken: set[str] = set()

    def __call__(self, name: str):
        def act(_ctx) -> None:
            self.calls.append(name)
            if name in self.broken:
                raise RuntimeError(f"{name} broke")

        return act


def _definition(journal: Journal) -> SagaDefinition:
    return SagaDefinition(
        "demo",
        (
            Step("lock", journal("lock"), timedelta(seconds=5), compensate=journal("unlock")),
            Step(
                "ask",
                journal("ask"),
                timedelta(seconds=10),
                awaits=frozenset({"a.Done", "b.Done"}),
                fails_on=frozenset({"a.Refused"}),
                attempts=2,
            ),
            Step("finish", journal("finish"), timedelta(seconds=5)),
        ),
    )


def _record() -> SagaRecord:
    return SagaRecord(id="s1", kind="demo", subject="u1", state=SagaState.RUNNING, step="lock")


def test_local_steps_run_at_once_and_the_saga_waits_on_the_first_step_with_replies():
    journal = Journal()
    record = _record()
    machine.start(_definition(journal), record, T0)
    assert journal.calls == ["lock", "ask"]
    assert record.step == "ask" and record.state == SagaState.RUNNING
    assert record.deadline == T0 + timedelta(seconds=10)


def test_the_saga_succeeds_once_every_awaited_reply_arrived():
    journal = Journal()
    definition, record = _definition(journal), _record()
    machine.start(definition, record, T0)
    machine.on_event(definition, record, "a.Done", {}, T0)
    assert record.state == SagaState.RUNNING and journal.calls == ["lock", "ask"]
    machine.on_event(definition, record, "b.Done", {}, T0)
    assert record.state == SagaState.SUCCEEDED
    assert journal.calls == ["lock", "ask", "finish"]
    assert record.deadline is None


def test_a_duplicate_or_unexpected_reply_changes_nothing():
    journal = Journal()
    definition, record = _definition(journal), _record()
    machine.start(definition, record, T0)
    machine.on_event(definition, record, "a.Done", {}, T0)
    machine.on_event(definition, record, "a.Done", {}, T0)
    machine.on_event(definition, record, "c.Other", {}, T0)
    assert record.received == ["a.Done"] and record.state == SagaState.RUNNING
    assert [e["what"] for e in record.history].count("ignored") == 2


def test_a_timeout_starts_the_step_again_keeping_the_replies_already_in():
    journal = Journal()
    definition, record = _definition(journal), _record()
    machine.start(definition, record, T0)
    machine.on_event(definition, record, "a.Done", {}, T0)
    assert machine.on_timeout(definition, record, T0 + timedelta(seconds=5)) == []
    assert journal.calls == ["lock", "ask"]
    machine.on_timeout(definition, record, T0 + timedelta(seconds=11))
    assert journal.calls == ["lock", "ask", "ask"]
    assert record.attempt == 2 and record.received == ["a.Done"]
    assert record.deadline == T0 + timedelta(seconds=21)


def test_a_step_that_times_out_on_every_attempt_fails_the_saga_with_its_reason():
    journal = Journal()
    definition, record = _definition(journal), _record()
    machine.start(definition, record, T0)
    machine.on_event(definition, record, "a.Done", {}, T0)
    machine.on_timeout(definition, record, T0 + timedelta(seconds=11))
    machine.on_timeout(definition, record, T0 + timedelta(seconds=22))
    assert record.state == SagaState.FAILED
    assert record.reason == "step 'ask' timed out 2 times waiting for b.Done"
    assert journal.calls[-1] == "unlock"


def test_a_failure_reply_compensates_the_steps_done_and_fails():
    journal = Journal()
    definition, record = _definition(journal), _record()
    machine.start(definition, record, T0)
    machine.on_event(definition, record, "a.Refused", {"reason": "no such user"}, T0)
    assert record.state == SagaState.FAILED and record.reason == "no such user"
    assert journal.calls == ["lock", "ask", "unlock"]


def test_a_compensation_that_raises_stays_compensating_until_the_sweep_succeeds():
    journal = Journal()
    journal.broken.add("unlock")
    definition, record = _definition(journal), _record()
    machine.start(definition, record, T0)
    machine.on_event(definition, record, "a.Refused", {}, T0)
    assert record.state == SagaState.COMPENSATING and record.deadline is not None
    journal.broken.clear()
    machine.on_timeout(definition, record, record.deadline)
    assert record.state == SagaState.FAILED
    assert journal.calls.count("unlock") == 2
    # Done once: a later sweep or reply runs nothing more.
    machine.on_timeout(definition, record, record.deadline or T0 + timedelta(days=1))
    assert journal.calls.count("unlock") == 2


def test_retry_starts_a_failed_sagas_step_again_and_only_a_failed_one():
    journal = Journal()
    definition, record = _definition(journal), _record()
    machine.start(definition, record, T0)
    with pytest.raises(machine.SagaNotRetryable):
        machine.retry(definition, record, T0)
    machine.on_event(definition, record, "a.Refused", {}, T0)
    machine.retry(definition, record, T0 + timedelta(seconds=1))
    assert record.state == SagaState.RUNNING and record.reason is None
    assert record.step == "ask" and journal.calls[-1] == "ask"
    machine.on_event(definition, record, "a.Done", {}, T0)
    machine.on_event(definition, record, "b.Done", {}, T0)
    assert record.state == SagaState.SUCCEEDED


def test_events_raised_by_steps_are_returned_to_the_caller():
    from dataclasses import dataclass

    from shared.events import Event

    @dataclass(frozen=True)
    class Asked(Event):
        aggregate_type = "demo"
        aggregate_field = "saga_id"
        saga_id: str

    definition = SagaDefinition(
        "emit",
        (
            Step(
                "ask",
                lambda ctx: ctx.emit(Asked(saga_id=ctx.saga_id)),
                timedelta(seconds=1),
                awaits=frozenset({"x.Done"}),
            ),
        ),
    )
    record = SagaRecord(id="s9", kind="emit", subject="u", state=SagaState.RUNNING, step="ask")
    assert machine.start(definition, record, T0) == [Asked(saga_id="s9")]


def test_a_definition_refuses_repeated_steps_and_steps_without_a_timeout():
    with pytest.raises(ValueError):
        SagaDefinition("x", (Step("a", print, timedelta(1)), Step("a", print, timedelta(1))))
    with pytest.raises(ValueError):
        Step("a", print, timedelta(0))
