"""fileUpdated, taskUpdated and taskLogs over graphql-transport-ws, fed by the relays' events.

The gateway runs under uvicorn; the files and tasks services, their relays (`dockyard relay`
subprocesses), PostgreSQL and RabbitMQ are real. Status changes are committed the way the
services make them: state and event in one unit of work, published by the relay.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from services.files.models import File
from services.tasks.models import TaskStatus
from services.tasks.tests.factories import append_output, move_task
from shared.events import Event
from tests.gateway_clients import FILE_UPDATED, Account, Gateway, Socket, session, upload

TASK_UPDATED = """
    subscription ($id: ID!) {
      taskUpdated(id: $id) { id status attempts exitCode startedAt finishedAt logs }
    }
"""
CREATE_TASK = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id status } }"


# Processing is another slice's work; these commit its transitions the way it does (state and
# event in one unit of work), with events of its names. The gateway reads no payload: events
# only tell it which file to read again.
@dataclass(frozen=True)
class _FileEvent(Event):
    aggregate_type = "file"
    aggregate_field = "file_id"

    file_id: str
    owner_id: str
    filename: str
    status: str


@dataclass(frozen=True)
class FileProcessingStarted(_FileEvent):
    """UPLOADED -> PROCESSING."""


@dataclass(frozen=True)
class FileProcessed(_FileEvent):
    """-> PROCESSED, results stored."""


@dataclass(frozen=True)
class FileProcessingFailed(_FileEvent):
    """-> FAILED."""


def move_file(files_app, file_id: str, status: str, **results: Any) -> None:
    """Commit a processing transition of a file with its event, as the processing slice does."""
    event = {
        "PROCESSING": FileProcessingStarted,
        "PROCESSED": FileProcessed,
        "FAILED": FileProcessingFailed,
    }[status]
    uow = files_app.extensions["files"].uow()
    with uow:
        file = uow.session.get(File, uuid.UUID(file_id), with_for_update=True)
        file.status = status
        for name, value in results.items():
            setattr(file, name, value)
        if status != "PROCESSING":
            file.processed_at = datetime.now(UTC)
        uow.add_event(
            event(
                file_id=file_id, owner_id=str(file.owner_id), filename=file.filename, status=status
            )
        )
        uow.commit()


@pytest.fixture(scope="module")
def gateway(served_gateway, relays) -> Gateway:
    """The session's served gateway, with both relays publishing."""
    return Gateway(served_gateway)


@pytest.fixture
def alice(gateway) -> Account:
    """A fresh user."""
    return gateway.sign_up()


@pytest.fixture
def bob(gateway) -> Account:
    """Another fresh user."""
    return gateway.sign_up()


def test_file_updated_sends_the_current_state_then_each_change_then_completes(
    gateway, served_gateway, alice, files_app
):
    file_id = upload(gateway, alice, b"one two\nthree\n")["id"]

    async def scenario(socket: Socket) -> list[dict]:
        await socket.subscribe("1", FILE_UPDATED, {"id": file_id})
        states = [await socket.next_state("1", "fileUpdated")]
        move_file(files_app, file_id, "PROCESSING")
        states.append(await socket.next_state("1", "fileUpdated"))
        move_file(
            files_app,
            file_id,
            "PROCESSED",
            line_count=2,
            word_count=3,
            mime_type="text/plain",
            encoding="us-ascii",
        )
        states.append(await socket.next_state("1", "fileUpdated"))
        await socket.completed("1")
        return states

    uploaded, processing, processed = session(served_gateway, alice, scenario)
    assert (uploaded["id"], uploaded["status"], uploaded["size"]) == (file_id, "UPLOADED", 14)
    assert processing["status"] == "PROCESSING"
    assert (processed["status"], processed["lineCount"], processed["wordCount"]) == (
        "PROCESSED",
        2,
        3,
    )
    assert processed["mimeType"] == "text/plain"
    assert processed["processedAt"] is not None


def test_a_late_subscriber_to_a_finished_file_gets_its_final_state_at_once(
    gateway, served_gateway, alice, files_app
):
    file_id = upload(gateway, alice, b"\x00binary")["id"]
    move_file(files_app, file_id, "PROCESSING")
    move_file(files_app, file_id, "FAILED", error="Cannot read the stored content.")

    async def scenario(socket: Socket) -> dict:
        await socket.subscribe("late", FILE_UPDATED, {"id": file_id})
        final = await socket.next_state("late", "fileUpdated")
        await socket.completed("late")
        return final

    final = session(served_gateway, alice, scenario)
    assert (final["status"], final["error"]) == ("FAILED", "Cannot read the stored content.")


def test_deleting_a_watched_file_completes_its_subscription(gateway, served_gateway, alice):
    file_id = upload(gateway, alice)["id"]

    async def scenario(socket: Socket) -> None:
        await socket.subscribe("1", FILE_UPDATED, {"id": file_id})
        assert (await socket.next_state("1", "fileUpdated"))["status"] == "UPLOADED"
        deleted = await asyncio.to_thread(
            gateway,
            "mutation ($id: ID!) { deleteFile(id: $id) }",
            {"id": file_id},
            token=alice.token,
        )
        assert deleted == {"data": {"deleteFile": True}}
        await socket.completed("1")

    session(served_gateway, alice, scenario)


def test_two_subscriptions_to_one_file_on_one_socket_both_follow_it(
    gateway, served_gateway, alice, files_app
):
    file_id = upload(gateway, alice)["id"]

    async def scenario(socket: Socket) -> list[tuple[str, str]]:
        for op_id in ("a", "b"):
            await socket.subscribe(op_id, FILE_UPDATED, {"id": file_id})
        seen = []
        for _ in range(2):
            message = await socket.receive()
            seen.append((message["id"], message["payload"]["data"]["fileUpdated"]["status"]))
        move_file(files_app, file_id, "PROCESSING")
        move_file(files_app, file_id, "PROCESSED", line_count=1, word_count=2)
        finished = 0
        while finished < 2:
            message = await socket.receive()
            if message["type"] == "complete":
                finished += 1
            else:
                seen.append((message["id"], message["payload"]["data"]["fileUpdated"]["status"]))
        return seen

    seen = session(served_gateway, alice, scenario)
    for op_id in ("a", "b"):
        statuses = [status for seen_id, status in seen if seen_id == op_id]
        # Both changes may land before a read: PROCESSING can be skipped, never reordered.
        assert statuses[0] == "UPLOADED" and statuses[-1] == "PROCESSED"
        assert statuses in (["UPLOADED", "PROCESSING", "PROCESSED"], ["UPLOADED", "PROCESSED"])


def not_found(served_gateway: str, user: Account, query: str, object_id: str) -> dict:
    """Subscribe to an object the user may not see; the messages that answer it."""

    async def scenario(socket: Socket) -> tuple[dict, dict]:
        await socket.subscribe("x", query, {"id": object_id})
        return await socket.receive(), await socket.receive()

    return session(served_gateway, user, scenario)


@pytest.mark.parametrize("whose", ["someone else's", "missing", "malformed"])
def test_a_file_the_subscriber_may_not_see_is_not_found(gateway, served_gateway, alice, bob, whose):
    file_id = {
        "someone else's": lambda: upload(gateway, alice)["id"],
        "missing": lambda: str(uuid.uuid4()),
        "malformed": lambda: "../../healthz",
    }[whose]()
    error, complete = not_found(served_gateway, bob, FILE_UPDATED, file_id)
    assert error["type"] == "next" and error["id"] == "x"
    assert [e["extensions"]["code"] for e in error["payload"]["errors"]] == ["NOT_FOUND"]
    assert error["payload"]["errors"][0]["message"] == "File not found."
    assert complete == {"id": "x", "type": "complete"}


def test_task_updated_sees_each_status_in_order_and_completes(
    gateway, served_gateway, alice, tasks_app
):
    created = gateway(
        CREATE_TASK, {"input": {"image": "busybox:1.36", "command": ["true"]}}, token=alice.token
    )
    task_id = created["data"]["createTask"]["id"]

    async def scenario(socket: Socket) -> list[dict]:
        await socket.subscribe("t", TASK_UPDATED, {"id": task_id})
        states = [await socket.next_state("t", "taskUpdated")]
        for status in (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED):
            await asyncio.to_thread(move_task, tasks_app, task_id, status)
            states.append(await socket.next_state("t", "taskUpdated"))
        await socket.completed("t")
        return states

    states = session(served_gateway, alice, scenario)
    assert [state["status"] for state in states] == ["PENDING", "QUEUED", "RUNNING", "SUCCEEDED"]
    running, succeeded = states[2], states[3]
    assert (running["attempts"], running["startedAt"] is not None) == (1, True)
    assert (succeeded["exitCode"], succeeded["finishedAt"] is not None) == (0, True)
    assert succeeded["logs"] == ""


def test_a_late_subscriber_to_a_finished_task_gets_its_final_state_at_once(
    gateway, served_gateway, alice, tasks_app
):
    task_id = _running_task(gateway, tasks_app, alice)
    move_task(tasks_app, task_id, TaskStatus.FAILED)

    async def scenario(socket: Socket) -> dict:
        await socket.subscribe("late", TASK_UPDATED, {"id": task_id})
        final = await socket.next_state("late", "taskUpdated")
        await socket.completed("late")
        return final

    final = session(served_gateway, alice, scenario)
    assert (final["status"], final["exitCode"], final["finishedAt"] is not None) == (
        "FAILED",
        3,
        True,
    )


def test_a_cancel_request_that_changes_no_status_sends_nothing(
    gateway, served_gateway, alice, tasks_app
):
    created = gateway(
        CREATE_TASK, {"input": {"image": "busybox:1.36", "command": ["true"]}}, token=alice.token
    )
    task_id = created["data"]["createTask"]["id"]
    move_task(tasks_app, task_id, TaskStatus.QUEUED, TaskStatus.RUNNING)

    async def scenario(socket: Socket) -> list[str]:
        await socket.subscribe("t", TASK_UPDATED, {"id": task_id})
        statuses = [(await socket.next_state("t", "taskUpdated"))["status"]]
        cancel = "mutation ($id: ID!) { cancelTask(id: $id) { status } }"
        # A running task stays RUNNING until the engine stops it (TaskCancelRequested only).
        answer = await asyncio.to_thread(gateway, cancel, {"id": task_id}, token=alice.token)
        assert answer == {"data": {"cancelTask": {"status": "RUNNING"}}}
        await asyncio.to_thread(move_task, tasks_app, task_id, TaskStatus.CANCELLED)
        statuses.append((await socket.next_state("t", "taskUpdated"))["status"])
        await socket.completed("t")
        return statuses

    assert session(served_gateway, alice, scenario) == ["RUNNING", "CANCELLED"]


def test_someone_elses_task_is_not_found(gateway, served_gateway, alice, bob):
    created = gateway(
        CREATE_TASK, {"input": {"image": "busybox:1.36", "command": ["true"]}}, token=alice.token
    )
    error, complete = not_found(
        served_gateway, bob, TASK_UPDATED, created["data"]["createTask"]["id"]
    )
    assert [e["extensions"]["code"] for e in error["payload"]["errors"]] == ["NOT_FOUND"]
    assert error["payload"]["errors"][0]["message"] == "Task not found."
    assert complete == {"id": "x", "type": "complete"}


TASK_LOGS = """
    subscription ($id: ID!, $after: String) {
      taskLogs(id: $id, after: $after) { taskId stream text at cursor }
    }
"""


def _running_task(gateway, tasks_app, user: Account) -> str:
    created = gateway(
        CREATE_TASK, {"input": {"image": "busybox:1.36", "command": ["true"]}}, token=user.token
    )
    task_id = created["data"]["createTask"]["id"]
    move_task(tasks_app, task_id, TaskStatus.QUEUED, TaskStatus.RUNNING)
    return task_id


def _store(tasks_app, task_id: str, stream: str, data: bytes, max_bytes: int = 1 << 20) -> None:
    append_output(tasks_app, task_id, stream, data, max_bytes=max_bytes)


async def _chunks_until(socket: Socket, op_id: str, wanted: str) -> list[dict]:
    """LogChunks of `op_id` until their texts add up to `wanted` (batches may merge)."""
    chunks: list[dict] = []
    while "".join(c["text"] for c in chunks) != wanted:
        chunks.append(await socket.next_state(op_id, "taskLogs"))
        assert wanted.startswith("".join(c["text"] for c in chunks)), chunks
    return chunks


def test_task_logs_replays_the_output_so_far_then_streams_then_completes(
    gateway, served_gateway, alice, tasks_app
):
    task_id = _running_task(gateway, tasks_app, alice)
    _store(tasks_app, task_id, "stdout", b"one\n")
    _store(tasks_app, task_id, "stderr", "warn é\n".encode())

    async def scenario(socket: Socket) -> tuple[list[dict], list[dict]]:
        await socket.subscribe("l", TASK_LOGS, {"id": task_id})
        replay = [await socket.next_state("l", "taskLogs") for _ in range(2)]
        await asyncio.to_thread(_store, tasks_app, task_id, "stdout", b"two\n")
        live = await _chunks_until(socket, "l", "two\n")
        await asyncio.to_thread(_store, tasks_app, task_id, "stdout", b"three\n")
        live += await _chunks_until(socket, "l", "three\n")
        await asyncio.to_thread(move_task, tasks_app, task_id, TaskStatus.SUCCEEDED)
        await socket.completed("l")
        return replay, live

    replay, live = session(served_gateway, alice, scenario)
    assert [(c["stream"], c["text"]) for c in replay] == [
        ("stdout", "one\n"),
        ("stderr", "warn é\n"),
    ]
    assert [(c["stream"], c["text"]) for c in live] == [("stdout", "two\n"), ("stdout", "three\n")]
    assert {c["taskId"] for c in replay + live} == {task_id}
    assert all(datetime.fromisoformat(c["at"]).tzinfo for c in replay + live)


def test_task_logs_sends_a_batch_of_lines_as_one_message(gateway, served_gateway, alice, tasks_app):
    task_id = _running_task(gateway, tasks_app, alice)
    lines = "".join(f"line {n}\n" for n in range(500))

    async def scenario(socket: Socket) -> list[dict]:
        await socket.subscribe("l", TASK_LOGS, {"id": task_id})
        await asyncio.to_thread(_store, tasks_app, task_id, "stdout", lines.encode())
        chunks = [await socket.next_state("l", "taskLogs")]
        await asyncio.to_thread(move_task, tasks_app, task_id, TaskStatus.SUCCEEDED)
        await socket.completed("l")
        return chunks

    (chunk,) = session(served_gateway, alice, scenario)
    assert chunk["text"] == lines


def test_a_late_subscriber_to_a_finished_task_gets_all_its_output_and_completes(
    gateway, served_gateway, alice, tasks_app
):
    task_id = _running_task(gateway, tasks_app, alice)
    _store(tasks_app, task_id, "stdout", b"a\n")
    _store(tasks_app, task_id, "stdout", b"b\n")
    _store(tasks_app, task_id, "stderr", b"oops\n")
    move_task(tasks_app, task_id, TaskStatus.FAILED)

    async def scenario(socket: Socket) -> list[dict]:
        await socket.subscribe("late", TASK_LOGS, {"id": task_id})
        chunks = [await socket.next_state("late", "taskLogs") for _ in range(2)]
        await socket.completed("late")
        return chunks

    chunks = session(served_gateway, alice, scenario)
    # Consecutive stored batches of one stream travel together.
    assert [(c["stream"], c["text"]) for c in chunks] == [
        ("stdout", "a\nb\n"),
        ("stderr", "oops\n"),
    ]


def test_task_logs_says_when_earlier_output_was_dropped(gateway, served_gateway, alice, tasks_app):
    task_id = _running_task(gateway, tasks_app, alice)
    _store(tasks_app, task_id, "stdout", b"0123456789\n", max_bytes=4)
    move_task(tasks_app, task_id, TaskStatus.SUCCEEDED)

    async def scenario(socket: Socket) -> dict:
        await socket.subscribe("l", TASK_LOGS, {"id": task_id})
        chunk = await socket.next_state("l", "taskLogs")
        await socket.completed("l")
        return chunk

    chunk = session(served_gateway, alice, scenario)
    assert chunk["text"] == "[dockyard: earlier output dropped: 7 bytes of stdout]\n789\n"


def _first_log_chunk(served_gateway, user: Account, task_id: str) -> dict:
    async def scenario(socket: Socket) -> dict:
        await socket.subscribe("l", TASK_LOGS, {"id": task_id})
        return await socket.next_state("l", "taskLogs")

    return session(served_gateway, user, scenario)


def _all_log_chunks(served_gateway, user: Account, task_id: str, after: str) -> list[dict]:
    async def scenario(socket: Socket) -> list[dict]:
        await socket.subscribe("l", TASK_LOGS, {"id": task_id, "after": after})
        chunks = []
        while (message := await socket.receive())["type"] == "next":
            assert "errors" not in message["payload"], message
            chunks.append(message["payload"]["data"]["taskLogs"])
        assert message == {"id": "l", "type": "complete"}
        return chunks

    return session(served_gateway, user, scenario)


def test_task_logs_resume_after_a_chunks_cursor(gateway, served_gateway, alice, tasks_app):
    task_id = _running_task(gateway, tasks_app, alice)
    _store(tasks_app, task_id, "stdout", b"seen\n")
    seen = _first_log_chunk(served_gateway, alice, task_id)
    assert seen["text"] == "seen\n"
    _store(tasks_app, task_id, "stderr", b"missed while away\n")
    move_task(tasks_app, task_id, TaskStatus.SUCCEEDED)

    resumed = _all_log_chunks(served_gateway, alice, task_id, seen["cursor"])
    assert [(c["stream"], c["text"]) for c in resumed] == [("stderr", "missed while away\n")]


def test_a_resumed_subscription_is_told_of_output_dropped_while_away(
    gateway, served_gateway, alice, tasks_app
):
    task_id = _running_task(gateway, tasks_app, alice)
    _store(tasks_app, task_id, "stdout", b"aaaa\n", max_bytes=10)
    seen = _first_log_chunk(served_gateway, alice, task_id)
    # Over the 10-byte cap: "aaaa\n" and the first 4 bytes of "cccc\n" are dropped.
    _store(tasks_app, task_id, "stdout", b"cccc\n", max_bytes=10)
    _store(tasks_app, task_id, "stdout", b"dddddddd\n", max_bytes=10)
    move_task(tasks_app, task_id, TaskStatus.SUCCEEDED)

    (resumed,) = _all_log_chunks(served_gateway, alice, task_id, seen["cursor"])
    assert resumed["text"] == "[dockyard: earlier output dropped: 4 bytes of stdout]\n\ndddddddd\n"


@pytest.mark.parametrize("after", ["", "12", "1.2", "a.b.c", "1.2.3.4", "-1.0.0"])
def test_a_bad_log_cursor_is_bad_user_input(gateway, served_gateway, alice, tasks_app, after):
    task_id = _running_task(gateway, tasks_app, alice)

    async def scenario(socket: Socket) -> dict:
        await socket.subscribe("l", TASK_LOGS, {"id": task_id, "after": after})
        return await socket.receive()

    answer = session(served_gateway, alice, scenario)
    errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("whose", ["someone else's", "missing", "malformed"])
def test_logs_of_a_task_the_subscriber_may_not_see_are_not_found(
    gateway, served_gateway, alice, bob, tasks_app, whose
):
    task_id = {
        "someone else's": lambda: _running_task(gateway, tasks_app, alice),
        "missing": lambda: str(uuid.uuid4()),
        "malformed": lambda: "../../healthz",
    }[whose]()
    error, complete = not_found(served_gateway, bob, TASK_LOGS, task_id)
    assert [e["extensions"]["code"] for e in error["payload"]["errors"]] == ["NOT_FOUND"]
    assert error["payload"]["errors"][0]["message"] == "Task not found."
    assert complete == {"id": "x", "type": "complete"}
