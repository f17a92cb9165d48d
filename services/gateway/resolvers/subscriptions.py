"""Subscriptions: fileUpdated, taskUpdated and taskLogs, driven by the services' events.

Each one watches its object in the process's EventFeed before reading it, sends what it read at
once, then reads again with the subscriber's token whenever an event names the object. The
status subscriptions send the object when its status changed; taskLogs sends the output stored
since its last read. They complete after a terminal status, or when the object is gone.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLResolveInfo

from services.gateway.context import GatewayContext
from services.gateway.errors import NotFound, ServiceUnavailable
from services.gateway.feed import Watch
from services.gateway.resolvers.root import subscription

log = logging.getLogger("dockyard.gateway.subscriptions")

FILE_DONE = frozenset({"PROCESSED", "FAILED"})
TASK_DONE = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "SKIPPED"})
#: Waits between reads while the owning service is unavailable: doubling up to the maximum.
RETRY_INITIAL, RETRY_MAX = 0.5, 30.0
#: Stored output batches: news for taskLogs, noise for taskUpdated.
OUTPUT_EVENTS = frozenset({"TaskOutputAppended"})
#: A taskLogs subscription reads again at least this often: events are triggers, and one lost
#: while the listener reconnected must not leave a live log silent for long.
LOGS_SAFETY_READ_SECONDS = 10.0
#: Most text one LogChunk carries when consecutive stored chunks of a stream are merged.
MAX_MERGED_CHARS = 64 * 1024

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
    ignore: frozenset[str] = frozenset(),
) -> AsyncIterator[dict[str, Any]]:
    """The object's current state, then each status change, until a terminal one or deletion."""
    try:
        key = str(uuid.UUID(object_id))
    except ValueError:
        raise NotFound(not_found) from None
    context.require_token()
    assert context.feed is not None, "subscriptions run with the process's event feed"
    # Watch before reading: a change committed after the read cannot go unnoticed.
    watch = context.feed.watch(aggregate_type, key, ignore=ignore)
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
        ignore=OUTPUT_EVENTS,
    )


def merge_chunks(task_id: str, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """LogChunks from stored chunks: runs of one stream joined (up to MAX_MERGED_CHARS)."""
    merged: list[dict[str, Any]] = []
    for chunk in chunks:
        last = merged[-1] if merged else None
        if (
            last is not None
            and last["stream"] == chunk["stream"]
            and len(last["text"]) + len(chunk["text"]) <= MAX_MERGED_CHARS
        ):
            last["text"] += chunk["text"]
            last["at"] = chunk["at"]
        else:
            merged.append(
                {
                    "task_id": task_id,
                    "stream": chunk["stream"],
                    "text": chunk["text"],
                    "at": chunk["at"],
                }
            )
    return merged


def _dropped_notice(task_id: str, page: dict[str, Any]) -> dict[str, Any] | None:
    dropped = {stream: size for stream, size in page["dropped"].items() if size}
    if not dropped:
        return None
    first = page["chunks"][0]["at"] if page["chunks"] else datetime.now(UTC)
    sizes = ", ".join(f"{size} bytes of {stream}" for stream, size in sorted(dropped.items()))
    stream = "stdout" if "stdout" in dropped else next(iter(dropped))
    text = f"[dockyard: earlier output dropped: {sizes}]\n"
    return {"task_id": task_id, "stream": stream, "text": text, "at": first}


async def log_chunks(context: GatewayContext, *, task_id: str) -> AsyncIterator[dict[str, Any]]:
    """The task's output so far, then each new batch as stored, until the task finishes."""
    try:
        key = str(uuid.UUID(task_id))
    except ValueError:
        raise NotFound("Task not found.") from None
    context.require_token()
    assert context.feed is not None, "subscriptions run with the process's event feed"
    watch = context.feed.watch("task", key)
    after: int | None = None

    def fetch() -> Awaitable[dict[str, Any] | None]:
        return context.blocking(
            context.clients.tasks.read_log_chunks, context.caller, task_id=key, after=after
        )

    try:
        page = await fetch()
        if page is None:
            raise NotFound("Task not found.")
        notice = _dropped_notice(key, page)
        if notice is not None:
            yield notice
        while True:
            for chunk in merge_chunks(key, page["chunks"]):
                yield chunk
            after = page["next_after"]
            if not page["has_more"]:
                # The service stores a task's last output before its final status.
                if page["status"] in TASK_DONE:
                    return
                await watch.changed(timeout=LOGS_SAFETY_READ_SECONDS)
            page = await _read_again(fetch, watch)
            if page is None:
                return  # deleted
    finally:
        watch.close()


@subscription.source("taskLogs")
def subscribe_task_logs(
    _obj: Any, info: GraphQLResolveInfo, *, id: str
) -> AsyncIterator[dict[str, Any]]:
    """The output so far, then each new batch; NOT_FOUND when absent or not the caller's."""
    return log_chunks(info.context, task_id=id)


@subscription.field("fileUpdated")
@subscription.field("taskUpdated")
@subscription.field("taskLogs")
def resolve_updated(state: dict[str, Any], _info: GraphQLResolveInfo, **_kwargs: Any) -> Any:
    """Each state the source produced is the field's value."""
    return state
