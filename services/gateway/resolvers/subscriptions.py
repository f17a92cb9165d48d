"""Subscriptions: fileUpdated, taskUpdated and taskLogs, driven by the services' events.

Each one watches its object in the process's EventFeed before reading it, sends what it read at
once, then reads again with the subscriber's token whenever an event names the object. The
status subscriptions send the object when its status changed; taskLogs sends the output stored
since its last read. They complete after a terminal status, or when the object is gone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from graphql import GraphQLResolveInfo

from services.gateway.context import GatewayContext
from services.gateway.errors import BadUserInput, NotFound, ServiceUnavailable
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


async def _read_again(
    fetch: Fetch, watch: Watch, *, wake_on_events: bool = True
) -> dict[str, Any] | None:
    """Read the object, retrying while its service is unavailable (sooner on an event)."""
    delay = RETRY_INITIAL
    while True:
        try:
            return await fetch()
        except ServiceUnavailable as exc:
            log.warning("cannot refresh a subscription, retrying in %.1fs: %s", delay, exc)
            if wake_on_events:
                await watch.changed(timeout=delay)
            else:
                await asyncio.sleep(delay)
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
        return context.clients.files.get_file(context.caller, file_id=id)

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
        return context.clients.tasks.get_task(context.caller, task_id=id)

    return status_updates(
        context,
        aggregate_type="task",
        object_id=id,
        fetch=fetch,
        terminal=TASK_DONE,
        not_found="Task not found.",
        ignore=OUTPUT_EVENTS,
    )


def log_pieces(
    task_id: str, chunks: list[dict[str, Any]], stream_ends: dict[str, int]
) -> list[dict[str, Any]]:
    """LogChunks from stored chunks: runs of one stream joined, dropped output announced.

    A chunk that starts past where `stream_ends` says its stream ended follows dropped output:
    its text gets a `[dockyard: earlier output dropped: ...]` line first. Runs of one stream
    are joined up to MAX_MERGED_CHARS. `stream_ends` is updated as the chunks are read.
    """
    pieces: list[dict[str, Any]] = []
    for chunk in chunks:
        stream = chunk["stream"]
        gap = chunk["offset"] - stream_ends.get(stream, chunk["offset"])
        stream_ends[stream] = chunk["offset"] + chunk["size"]
        text = chunk["text"]
        if gap > 0:
            text = f"[dockyard: earlier output dropped: {gap} bytes of {stream}]\n" + text
        last = pieces[-1] if pieces else None
        if (
            last is not None
            and last["stream"] == stream
            and len(last["text"]) + len(text) <= MAX_MERGED_CHARS
        ):
            last["text"] += text
            last["at"], last["cursor"] = chunk["at"], _encode_log_cursor(chunk["id"], stream_ends)
        else:
            pieces.append(
                {
                    "task_id": task_id,
                    "stream": stream,
                    "text": text,
                    "at": chunk["at"],
                    "cursor": _encode_log_cursor(chunk["id"], stream_ends),
                }
            )
    return pieces


def _encode_log_cursor(chunk_id: int, stream_ends: dict[str, int]) -> str:
    # The chunk read last and where each stream ended: a resumed subscription can tell
    # whether output it never saw was dropped meanwhile.
    return f"{chunk_id}.{stream_ends.get('stdout', 0)}.{stream_ends.get('stderr', 0)}"


def _decode_log_cursor(cursor: str) -> tuple[int, dict[str, int]]:
    parts = cursor.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 19 for p in parts):
        raise BadUserInput(
            "Not a cursor of this task's logs.", fields={"after": "Use a LogChunk's cursor."}
        )
    chunk_id, stdout_end, stderr_end = (int(p) for p in parts)
    return chunk_id, {"stdout": stdout_end, "stderr": stderr_end}


async def log_chunks(
    context: GatewayContext, *, task_id: str, after: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The task's output so far (or after a LogChunk's cursor), then each batch as stored."""
    # From the start every stream begins at 0, so output dropped before it shows as a gap.
    read_after, stream_ends = (
        (None, {"stdout": 0, "stderr": 0}) if after is None else _decode_log_cursor(after)
    )
    try:
        key = str(uuid.UUID(task_id))
    except ValueError:
        raise NotFound("Task not found.") from None
    context.require_token()
    assert context.feed is not None, "subscriptions run with the process's event feed"
    watch = context.feed.watch("task", key)

    def fetch() -> Awaitable[dict[str, Any] | None]:
        return context.clients.tasks.read_log_chunks(context.caller, task_id=key, after=read_after)

    try:
        page = await fetch()
        if page is None:
            raise NotFound("Task not found.")
        while True:
            for piece in log_pieces(key, page["chunks"], stream_ends):
                yield piece
            read_after = page["next_after"]
            if not page["has_more"]:
                # The service stores a task's last output before its final status.
                if page["status"] in TASK_DONE:
                    return
                await watch.changed(timeout=LOGS_SAFETY_READ_SECONDS)
            # While the service is down, output events must not hurry the retries along.
            page = await _read_again(fetch, watch, wake_on_events=False)
            if page is None:
                return  # deleted
    finally:
        watch.close()


@subscription.source("taskLogs")
def subscribe_task_logs(
    _obj: Any, info: GraphQLResolveInfo, *, id: str, after: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The output so far (or after `after`), then each new batch; NOT_FOUND when not yours."""
    return log_chunks(info.context, task_id=id, after=after)


@subscription.field("fileUpdated")
@subscription.field("taskUpdated")
@subscription.field("taskLogs")
def resolve_updated(state: dict[str, Any], _info: GraphQLResolveInfo, **_kwargs: Any) -> Any:
    """Each state the source produced is the field's value."""
    return state
