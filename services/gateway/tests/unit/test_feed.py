"""The event feed and the subscriptions' update loop, driven by hand on one event loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from services.gateway.clients import Caller
from services.gateway.context import GatewayContext
from services.gateway.errors import NotFound, ServiceUnavailable, Unauthenticated
from services.gateway.feed import EventFeed
from services.gateway.resolvers import subscriptions
from services.gateway.resolvers.subscriptions import FILE_DONE, status_updates
from shared.events import Envelope

FILE_ID = "6f1c2b0e-3d4a-4c5b-9e8f-0a1b2c3d4e5f"


def envelope(aggregate_id: str, aggregate_type: str = "file", type_: str = "FileProcessed"):
    """An event envelope naming one aggregate."""
    return Envelope(
        id=str(uuid.uuid4()),
        type=type_,
        version=1,
        source="files",
        occurred_at="2026-11-22T05:00:00+00:00",
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        sequence=1,
        correlation_id=None,
    )


def test_an_event_notifies_only_the_watches_of_its_aggregate():
    async def scenario() -> tuple[bool, bool, bool]:
        feed = EventFeed()
        mine, same, other = (
            feed.watch("file", FILE_ID),
            feed.watch("file", FILE_ID),
            feed.watch("task", FILE_ID),
        )
        feed.deliver(envelope(FILE_ID))
        return (
            await mine.changed(timeout=0.1),
            await same.changed(timeout=0.1),
            await other.changed(timeout=0.1),
        )

    assert asyncio.run(scenario()) == (True, True, False)


def test_resync_notifies_every_watch_and_closed_watches_are_forgotten():
    async def scenario() -> tuple[bool, bool, int]:
        feed = EventFeed()
        first, second = feed.watch("file", FILE_ID), feed.watch("task", str(uuid.uuid4()))
        feed.resync()
        notified = await first.changed(timeout=0.1), await second.changed(timeout=0.1)
        first.close()
        second.close()
        return (*notified, len(feed))

    assert asyncio.run(scenario()) == (True, True, 0)


class Script:
    """A fetch whose answers are scripted: a state dict, None (gone) or an exception."""

    def __init__(self, feed: EventFeed, answers: list[Any]) -> None:
        self.feed = feed
        self.answers = answers
        self.calls = 0
        self.watched_at_first_call: int | None = None

    async def __call__(self) -> dict[str, Any] | None:
        if self.watched_at_first_call is None:
            self.watched_at_first_call = len(self.feed)
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _context(feed: EventFeed) -> GatewayContext:
    return GatewayContext(caller=Caller(token="t"), clients=None, verifier=None, feed=feed)  # type: ignore[arg-type]


def _run(
    answers: list[Any],
    drive: Callable[[EventFeed, Script], Any] | None = None,
    object_id: str = FILE_ID,
) -> tuple[list[dict[str, Any]], Script, BaseException | None]:
    """Iterate a file's updates while `drive` (a coroutine) delivers events."""

    async def scenario():
        feed = EventFeed()
        fetch = Script(feed, answers)
        updates = status_updates(
            _context(feed),
            aggregate_type="file",
            object_id=object_id,
            fetch=fetch,
            terminal=FILE_DONE,
            not_found="File not found.",
        )
        received: list[dict[str, Any]] = []
        driver = asyncio.create_task(drive(feed, fetch) if drive else asyncio.sleep(0))
        error = None
        try:
            async with asyncio.timeout(5):
                async for state in updates:
                    received.append(state)
        except Exception as exc:  # noqa: BLE001 - returned for the test to check
            error = exc
        driver.cancel()
        return received, fetch, error, len(feed)

    received, fetch, error, watched_after = asyncio.run(scenario())
    assert watched_after == 0, "the watch outlived its subscription"
    return received, fetch, error


def events_after_each_read(feed: EventFeed, fetch: Script) -> Any:
    """Deliver an event for the file each time the subscription has read it."""

    async def drive() -> None:
        delivered = 0
        while True:
            if fetch.calls > delivered:
                delivered = fetch.calls
                feed.deliver(envelope(FILE_ID))
            await asyncio.sleep(0.001)

    return drive()


def test_the_current_state_comes_first_then_each_status_change_until_a_terminal_one():
    answers = [{"status": "UPLOADED"}, {"status": "PROCESSING"}, {"status": "PROCESSED"}]
    received, fetch, error = _run(answers, events_after_each_read)
    assert error is None
    assert [state["status"] for state in received] == ["UPLOADED", "PROCESSING", "PROCESSED"]
    assert fetch.watched_at_first_call == 1, "the watch must exist before the first read"


def test_an_event_that_changes_no_status_sends_nothing():
    answers = [{"status": "UPLOADED"}, {"status": "UPLOADED"}, {"status": "FAILED"}]
    received, fetch, error = _run(answers, events_after_each_read)
    assert error is None
    assert [state["status"] for state in received] == ["UPLOADED", "FAILED"]
    assert fetch.calls == 3


def test_a_finished_file_is_sent_once_and_completes():
    received, fetch, error = _run([{"status": "PROCESSED"}])
    assert (received, fetch.calls, error) == ([{"status": "PROCESSED"}], 1, None)


def test_a_deleted_file_completes_the_subscription():
    received, _fetch, error = _run([{"status": "UPLOADED"}, None], events_after_each_read)
    assert (received, error) == ([{"status": "UPLOADED"}], None)


@pytest.mark.parametrize("object_id", [FILE_ID, "not-a-uuid"])
def test_an_absent_file_is_not_found(object_id):
    received, _fetch, error = _run([None], object_id=object_id)
    assert received == []
    assert isinstance(error, NotFound)


def test_an_unavailable_service_is_read_again_until_it_answers(monkeypatch):
    monkeypatch.setattr(subscriptions, "RETRY_INITIAL", 0.01)
    answers = [
        {"status": "UPLOADED"},
        ServiceUnavailable("down"),
        ServiceUnavailable("down"),
        {"status": "PROCESSED"},
    ]

    def one_event(feed: EventFeed, fetch: Script) -> Any:
        async def drive() -> None:
            while fetch.calls < 1:
                await asyncio.sleep(0.001)
            feed.deliver(envelope(FILE_ID))

        return drive()

    received, fetch, error = _run(answers, one_event)
    assert error is None
    assert [state["status"] for state in received] == ["UPLOADED", "PROCESSED"]
    assert fetch.calls == 4


def test_a_token_that_stopped_working_ends_the_subscription_with_its_error():
    answers = [{"status": "UPLOADED"}, Unauthenticated("expired")]
    received, _fetch, error = _run(answers, events_after_each_read)
    assert [state["status"] for state in received] == ["UPLOADED"]
    assert isinstance(error, Unauthenticated)
