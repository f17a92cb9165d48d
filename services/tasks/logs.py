"""A task's output: storing it in capped chunks, reading it whole or its tail, following it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from services.tasks.events import TaskOutputAppended
from services.tasks.lifecycle import is_finished
from services.tasks.models import LogStream, Task, TaskLogChunk
from services.tasks.service import TaskNotFound, owned_task
from shared.db import UnitOfWork

#: Chunks fetched per round trip while reading logs backwards for a tail.
_TAIL_BATCH = 64
#: Most output bytes one read of chunks returns (it stops after the chunk that crosses it).
CHUNK_PAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class TaskLogs:
    """A task's stored output: one stream, or both interleaved in arrival order."""

    task_id: str
    status: str
    stream: str
    text: str
    #: Some earlier output of the requested streams was dropped (over the size cap).
    truncated: bool
    #: The newest chunk the text includes (resume point of a follow), None when there is none.
    last_chunk_id: int | None = None
    #: Where the text ends in each stream it covers to its end (what a follow goes on from).
    stream_ends: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LogChunkView:
    """One stored batch of one stream's output."""

    id: int
    stream: str
    text: str
    at: datetime
    #: Where the chunk starts in its stream, and how many bytes it holds: a chunk that starts
    #: past the end of the previous one of its stream follows dropped output.
    offset: int
    size: int


@dataclass(frozen=True)
class LogChunkPage:
    """The chunks stored after a given one, in arrival order, with the task's status then."""

    task_id: str
    status: str
    chunks: list[LogChunkView]
    #: Pass as `after` to read on; equals the `after` asked for when nothing new was stored.
    next_after: int
    #: More chunks are stored already (this page hit its size or count limit).
    has_more: bool
    #: Bytes of each requested stream dropped over the size cap so far.
    dropped: dict[str, int]


def complete_utf8_length(data: bytes | bytearray) -> int:
    """The length of `data` without a UTF-8 character cut short at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: its lead byte is further back
        needed = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
        if byte >= 0xC0 and byte < 0xF8 and back < needed:
            return len(data) - back
        return len(data)
    return len(data)


def utf8_boundary(data: bytes | bytearray, cut: int) -> int:
    """The first offset at or after `cut` that does not split a UTF-8 character."""
    while cut < len(data) and data[cut] & 0xC0 == 0x80:
        cut += 1
    return cut


def append_output(
    uow: UnitOfWork,
    *,
    task_id: uuid.UUID,
    batches: Mapping[LogStream, bytes],
    max_bytes: int,
    lost: Mapping[LogStream, int] | None = None,
) -> None:
    """Store a batch of a task's output per stream, dropping the oldest bytes beyond `max_bytes`.

    For the engine: one transaction and one TaskOutputAppended event per call, whatever the
    number of lines. `lost` counts bytes of a stream that came before its batch but were never
    read or kept (they count as dropped). Raises TaskNotFound.
    """
    with uow:
        task = uow.session.get(Task, task_id, with_for_update=True)
        if task is None:
            raise TaskNotFound(str(task_id))
        store_output(uow, task, batches=batches, max_bytes=max_bytes, lost=lost)
        uow.commit()


def store_output(
    uow: UnitOfWork,
    task: Task,
    *,
    batches: Mapping[LogStream, bytes],
    max_bytes: int,
    lost: Mapping[LogStream, int] | None = None,
    announce: bool = True,
) -> None:
    """append_output's work inside the caller's open unit of work (the task's row locked).

    `announce=False` leaves out the TaskOutputAppended event, for a caller whose transaction
    raises another event of the task (which wakes the output's readers as well).
    """
    lost = lost or {}
    last_chunk_id, stored = None, 0
    for stream in dict.fromkeys([*batches, *(s for s, size in lost.items() if size)]):
        data = batches.get(stream, b"")
        chunk = _append_stream(uow, task, LogStream(stream), data, max_bytes, lost.get(stream, 0))
        if chunk is not None:
            last_chunk_id, stored = chunk.id, stored + len(chunk.data)
    if last_chunk_id is not None and announce:
        uow.add_event(
            TaskOutputAppended(
                task_id=str(task.id),
                owner_id=str(task.owner_id),
                last_chunk_id=last_chunk_id,
                bytes=stored,
            )
        )


def _append_stream(
    uow: UnitOfWork, task: Task, stream: LogStream, data: bytes, max_bytes: int, lost: int = 0
) -> TaskLogChunk | None:
    """Add one stream's batch under the task's row lock and enforce the cap; the new chunk."""
    kept, dropped = task.log_counters(stream)
    dropped += lost
    if len(data) > max_bytes:
        cut = utf8_boundary(data, len(data) - max_bytes)
        data, dropped = data[cut:], dropped + cut
    chunk = None
    if data:
        chunk = TaskLogChunk(task_id=task.id, stream=stream, data=data, start_offset=kept + dropped)
        uow.session.add(chunk)
        uow.session.flush()  # its id orders it, and names it in the event
        kept += len(data)
    excess = kept - max_bytes
    if excess > 0:
        oldest = uow.session.execute(
            select(TaskLogChunk.id, func.octet_length(TaskLogChunk.data))
            .where(TaskLogChunk.task_id == task.id, TaskLogChunk.stream == stream)
            .order_by(TaskLogChunk.id)
        )
        doomed = []
        for chunk_id, size in oldest:
            if size <= excess:
                doomed.append(chunk_id)
                excess, kept, dropped = excess - size, kept - size, dropped + size
                continue
            old = uow.session.get(TaskLogChunk, chunk_id)
            cut = utf8_boundary(old.data, excess)
            old.data = old.data[cut:]
            old.start_offset += cut
            kept, dropped = kept - cut, dropped + cut
            break
        if doomed:
            uow.session.execute(delete(TaskLogChunk).where(TaskLogChunk.id.in_(doomed)))
    task.set_log_counters(stream, kept=kept, dropped=dropped)
    return chunk


def _last_lines(data: bytes, count: int) -> tuple[bytes, bool]:
    """The last `count` lines of `data` (a final newline ends a line), and whether it cut."""
    body_end = len(data) - 1 if data.endswith(b"\n") else len(data)
    start = body_end
    for _ in range(count):
        start = data.rfind(b"\n", 0, start)
        if start < 0:
            return data, False
    return data[start + 1 :], True


def _marker(dropped: dict[LogStream, int]) -> bytes:
    parts = ", ".join(f"{size} bytes of {stream}" for stream, size in dropped.items() if size)
    return f"[dockyard: earlier output dropped: {parts}]\n".encode()


def read_logs(
    uow: UnitOfWork,
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    stream: str = "both",
    tail: int | None = None,
) -> TaskLogs:
    """A task's stored output, optionally its last `tail` lines; raises TaskNotFound.

    When the text reaches back to the oldest byte kept and older output was dropped, it starts
    with a `[dockyard: earlier output dropped: ...]` line.
    """
    streams = _streams(stream)
    query = select(
        TaskLogChunk.id, TaskLogChunk.stream, TaskLogChunk.data, TaskLogChunk.start_offset
    ).where(TaskLogChunk.task_id == task_id, TaskLogChunk.stream.in_(streams))
    with uow:
        task = owned_task(uow, owner_id, task_id, lock=False)
        dropped = {s: task.log_counters(s)[1] for s in streams}
        if tail is None:
            rows = uow.session.execute(query.order_by(TaskLogChunk.id)).all()
            data = b"".join(row.data for row in rows)
            last_chunk_id = rows[-1].id if rows else None
            # From the chunks read, not the counters: a batch stored in between is in one only.
            ends = {str(s): 0 for s in streams} | {
                row.stream: row.start_offset + len(row.data) for row in rows
            }
            cut = False
        else:
            data, cut, last_chunk_id, ends = _read_tail(uow, query, tail)
        status = task.status
    if not cut and any(dropped.values()):
        data = _marker(dropped) + data
    return TaskLogs(
        task_id=str(task_id),
        status=status,
        stream=stream,
        text=data.decode("utf-8", errors="replace"),
        truncated=any(dropped.values()),
        last_chunk_id=last_chunk_id,
        stream_ends=ends,
    )


def read_log_chunks(
    uow: UnitOfWork,
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    after: int | None = None,
    stream: str = "both",
    limit: int = 100,
) -> LogChunkPage:
    """The chunks stored after chunk `after` (all when None), oldest first; raises TaskNotFound.

    The engine stores a task's last output before its final status, so a finished status with
    `has_more` false means the output is complete.
    """
    streams = _streams(stream)
    query = (
        select(
            TaskLogChunk.id,
            TaskLogChunk.stream,
            TaskLogChunk.data,
            TaskLogChunk.created_at,
            TaskLogChunk.start_offset,
        )
        .where(TaskLogChunk.task_id == task_id, TaskLogChunk.stream.in_(streams))
        .order_by(TaskLogChunk.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(TaskLogChunk.id > after)
    with uow:
        # Status first: when it is final, every chunk committed before it is visible to the
        # chunk query that follows (read committed), so nothing stored is missed.
        task = owned_task(uow, owner_id, task_id, lock=False)
        rows = uow.session.execute(query).all()
        status, dropped = task.status, {str(s): task.log_counters(s)[1] for s in streams}
    chunks, size = [], 0
    for row in rows[:limit]:
        chunks.append(
            LogChunkView(
                id=row.id,
                stream=row.stream,
                text=row.data.decode("utf-8", errors="replace"),
                at=row.created_at,
                offset=row.start_offset,
                size=len(row.data),
            )
        )
        size += len(row.data)
        if size >= CHUNK_PAGE_BYTES:
            break
    return LogChunkPage(
        task_id=str(task_id),
        status=status,
        chunks=chunks,
        next_after=chunks[-1].id if chunks else (after or 0),
        has_more=len(chunks) < len(rows),
        dropped=dropped,
    )


def follow_logs(
    uows: Callable[[], UnitOfWork],
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    stream: str = "both",
    tail: int | None = None,
    poll_seconds: float = 0.5,
    max_seconds: float = 3600,
) -> Iterator[str]:
    """The output so far (or its tail), then new output as it is stored, until the task finishes.

    The first read happens now, so TaskNotFound is raised before anything is sent; the rest is
    read lazily, one short transaction per poll. Ends after `max_seconds` even if still running.
    """
    first = read_logs(uows(), owner_id=owner_id, task_id=task_id, stream=stream, tail=tail)
    return _followed(
        uows,
        first,
        owner_id=owner_id,
        task_id=task_id,
        stream=stream,
        poll_seconds=poll_seconds,
        deadline=time.monotonic() + max_seconds,
    )


def _followed(
    uows: Callable[[], UnitOfWork],
    first: TaskLogs,
    *,
    owner_id: uuid.UUID,
    task_id: uuid.UUID,
    stream: str,
    poll_seconds: float,
    deadline: float,
) -> Iterator[str]:
    # Even when empty: the server sends the status and headers with the first piece, and a
    # client must not wait for the task's first output to learn that the stream is open.
    yield first.text
    after = first.last_chunk_id
    stream_ends: dict[str, int] = dict(first.stream_ends)
    while True:
        try:
            page = read_log_chunks(
                uows(), owner_id=owner_id, task_id=task_id, after=after, stream=stream
            )
        except TaskNotFound:
            return  # deleted while followed
        for chunk in page.chunks:
            gap = chunk.offset - stream_ends.get(chunk.stream, chunk.offset)
            if gap > 0:
                yield _marker({LogStream(chunk.stream): gap}).decode()
            stream_ends[chunk.stream] = chunk.offset + chunk.size
            yield chunk.text
        after = page.next_after
        if page.has_more:
            continue
        if is_finished(page.status) or time.monotonic() >= deadline:
            return
        time.sleep(poll_seconds)


def _streams(stream: str) -> list[LogStream]:
    return list(LogStream) if stream == "both" else [LogStream(stream)]


def _read_tail(
    uow: UnitOfWork, query: Any, lines: int
) -> tuple[bytes, bool, int | None, dict[str, int]]:
    """Read chunks newest first until `lines` whole lines are in hand.

    Also the newest chunk's id and where each stream read ends.
    """
    collected: list[bytes] = []
    newlines = 0
    before = None
    newest = None
    ends: dict[str, int] = {}
    while True:
        page = query.order_by(TaskLogChunk.id.desc()).limit(_TAIL_BATCH)
        if before is not None:
            page = page.where(TaskLogChunk.id < before)
        rows = uow.session.execute(page).all()
        if rows and newest is None:
            newest = rows[0].id
        for row in rows:
            collected.append(row.data)
            newlines += row.data.count(b"\n")
            ends.setdefault(row.stream, row.start_offset + len(row.data))
        # One newline more than lines asked for marks where the earliest wanted line starts.
        if newlines > lines or len(rows) < _TAIL_BATCH:
            break
        before = rows[-1].id
    data, cut = _last_lines(b"".join(reversed(collected)), lines)
    return data, cut, newest, ends
