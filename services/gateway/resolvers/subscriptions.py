"""Subscriptions: fileUpdated and taskUpdated from the services' events; taskLogs not yet.

Each one watches its object in the process's EventFeed before reading it, sends the state it
read at once, then reads the object again with the subscriber's token whenever an event names
it, and sends it when its status changed. It completes after a terminal status, or when the
object is gone (deleted).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from graphql import GraphQLResolveInfo

from services.gateway.context import GatewayContext
from services.gateway.errors import NotFound, ServiceUnavailable
from services.gateway.feed import Watch
from services.gateway.resolvers.root import subscription
from services.gateway.resolvers.unavailable import not_available_yet_source

log = logging.getLogger("dockyard.gateway.subscriptions")

FILE_DONE = frozenset({"PROCESSED", "FAILED"})
TASK_DONE = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "SKIPPED"})
#: Waits between reads while the owning service is unavailable: doubling up to the maximum.
RETRY_INITIAL, RETRY_MAX = 0.5, 30.0

Fetch = Callable[[], Awaitable[dict[str, Any] | None]]


async def _read_again(fetch: Fetch, watch: Watch) -> dict[str, Any] | None:
    """Read the object, retrying while its service is unavailable (an event may come first)."""
    delay = RETRY_INITIAL
    while True:
        try:
            return await fetch()
        except ServiceUnavailable as exc:
            log.warning("cannot refresh a subscription, retrying in %.1fs: %s", delay, exc)
            await watch.changed(timeout=delay)
            delay = min(delay * 2, RETRY_MAX)


async def status_updates(
    context: GatewayContext,
    *,
    aggregate_type: str,
    object_id: str,
    fetch: Fetch,
    terminal: frozenset[str],
    not_found: str,
) -> AsyncIterator[dict[str, Any]]:
    """The object's current state, then each status change, until a terminal one or deletion."""
    try:
        key = str(uuid.UUID(object_id))
    except ValueError:
        raise NotFound(not_found) from None
    context.require_token()
    assert context.feed is not None, "subscriptions run with the process's event feed"
    # Watch before reading: a change committed after the read cannot go unnoticed.
    watch = context.feed.watch(aggregate_type, key)
    try:
        current = await fetch()
        if current is None:
            raise NotFound(not_found)
        yield current
        status = current["status"]
        while status not in terminal:
            await watch.changed()
            current = await _read_again(fetch, watch)
            if current is None:
                return
            if current["status"] != status:
                status = current["status"]
                yield current
    finally:
        watch.close()


@subscription.source("fileUpdated")
def subscribe_file_updated(
    _obj: Any, info: GraphQLResolveInfo, *, id: str
) -> AsyncIterator[dict[str, Any]]:
    """The file now, then at each status change; NOT_FOUND when absent or not the caller's."""
    context: GatewayContext = info.context

    def fetch() -> Awaitable[dict[str, Any] | None]:
        return context.blocking(context.clients.files.get_file, context.caller, file_id=id)

    return status_updates(
        context,
        aggregate_type="file",
        object_id=id,
        fetch=fetch,
        terminal=FILE_DONE,
        not_found="File not found.",
    )


@subscription.source("taskUpdated")
def subscribe_task_updated(
    _obj: Any, info: GraphQLResolveInfo, *, id: str
) -> AsyncIterator[dict[str, Any]]:
    """The task now, then at each status change; NOT_FOUND when absent or not the caller's."""
    context: GatewayContext = info.context

    def fetch() -> Awaitable[dict[str, Any] | None]:
        return context.blocking(context.clients.tasks.get_task, context.caller, task_id=id)

    return status_updates(
        context,
        aggregate_type="task",
        object_id=id,
        fetch=fetch,
        terminal=TASK_DONE,
        not_found="Task not found.",
    )


@subscription.field("fileUpdated")
@subscription.field("taskUpdated")
def resolve_updated(state: dict[str, Any], _info: GraphQLResolveInfo, **_kwargs: Any) -> Any:
    """Each state the source produced is the field's value."""
    return state


subscription.set_source("taskLogs", not_available_yet_source("taskLogs"))
