"""Task output: streams kept apart, a bounded store with a truncation marker, tails."""

from __future__ import annotations

import uuid

import pytest

from services.tasks import logs, service
from services.tasks.models import LogStream, TaskStatus
from services.tasks.tests.factories import (
    append_output,
    create_task,
    move_task,
    stored_chunks,
    task_in,
)

CAP = 1024


def _logs(client, user, task_id, **query):
    response = client.get(f"/v1/tasks/{task_id}/logs", query_string=query, headers=user.headers)
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def running(tasks_app, client, alice):
    """A running task of alice's with some interleaved output."""
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    for stream, data in [
        ("stdout", b"out 1\nout 2\n"),
        ("stderr", b"err 1\n"),
        ("stdout", b"out 3\n"),
        ("stderr", b"err 2\n"),
    ]:
        append_output(tasks_app, task["id"], stream, data, max_bytes=CAP)
    return task


def test_a_task_without_output_has_empty_logs(client, alice):
    task = create_task(client, alice)
    assert _logs(client, alice, task["id"]) == {
        "task_id": task["id"],
        "status": "PENDING",
        "stream": "both",
        "text": "",
        "truncated": False,
        "last_chunk_id": None,
    }


def test_both_streams_interleave_in_arrival_order(client, alice, running):
    logs = _logs(client, alice, running["id"])
    assert logs["text"] == "out 1\nout 2\nerr 1\nout 3\nerr 2\n"
    assert (logs["stream"], logs["status"], logs["truncated"]) == ("both", "RUNNING", False)


def test_each_stream_reads_apart(client, alice, running):
    assert _logs(client, alice, running["id"], stream="stdout")["text"] == "out 1\nout 2\nout 3\n"
    assert _logs(client, alice, running["id"], stream="stderr")["text"] == "err 1\nerr 2\n"


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ({"tail": 1}, "err 2\n"),
        ({"tail": 2}, "out 3\nerr 2\n"),
        ({"tail": 2, "stream": "stdout"}, "out 2\nout 3\n"),
        ({"tail": 1, "stream": "stderr"}, "err 2\n"),
        ({"tail": 100}, "out 1\nout 2\nerr 1\nout 3\nerr 2\n"),
    ],
)
def test_tail_returns_the_last_lines(client, alice, running, query, text):
    assert _logs(client, alice, running["id"], **query)["text"] == text


def test_a_last_line_without_newline_counts_as_a_line(tasks_app, client, alice, running):
    append_output(tasks_app, running["id"], "stdout", b"partial", max_bytes=CAP)
    assert _logs(client, alice, running["id"], tail=2)["text"] == "err 2\npartial"


def test_tail_reaches_back_across_many_chunks(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    for index in range(150):
        # Lines split across chunks: a line is whole only once its newline arrives.
        append_output(tasks_app, task["id"], "stdout", f"line {index}".encode(), max_bytes=CAP * 8)
        append_output(tasks_app, task["id"], "stdout", b"\n", max_bytes=CAP * 8)
    assert _logs(client, alice, task["id"], tail=70)["text"] == "".join(
        f"line {i}\n" for i in range(80, 150)
    )


def test_output_over_the_cap_keeps_the_newest_bytes_and_says_what_was_dropped(
    tasks_app, client, alice
):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    lines = [f"{i:04d}".encode() + b"x" * 59 + b"\n" for i in range(40)]  # 64 bytes each
    for line in lines:
        append_output(tasks_app, task["id"], "stdout", line, max_bytes=CAP)
    append_output(tasks_app, task["id"], "stderr", b"boom\n", max_bytes=CAP)
    kept = b"".join(lines)[-CAP:]
    assert sum(len(data) for stream, data in stored_chunks(tasks_app, task["id"])) == CAP + 5

    stdout = _logs(client, alice, task["id"], stream="stdout")
    assert stdout["truncated"] is True
    marker = "[dockyard: earlier output dropped: 1536 bytes of stdout]\n"
    assert stdout["text"] == marker + kept.decode()

    both = _logs(client, alice, task["id"])
    assert both["text"] == marker + kept.decode() + "boom\n"
    stderr = _logs(client, alice, task["id"], stream="stderr")
    assert (stderr["text"], stderr["truncated"]) == ("boom\n", False)

    tail = _logs(client, alice, task["id"], stream="stdout", tail=2)
    assert tail["text"] == b"".join(lines[-2:]).decode()
    assert tail["truncated"] is True


def test_a_single_batch_over_the_cap_keeps_only_its_end(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    append_output(tasks_app, task["id"], "stderr", b"a" * 3000 + b"z" * 24, max_bytes=CAP)
    logs = _logs(client, alice, task["id"], stream="stderr")
    assert logs["text"] == (
        "[dockyard: earlier output dropped: 2000 bytes of stderr]\n" + "a" * 1000 + "z" * 24
    )


def test_output_the_engine_never_handed_over_counts_as_dropped(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    logs.append_output(
        tasks_app.extensions["tasks"].uow(),
        task_id=uuid.UUID(task["id"]),
        batches={LogStream.STDOUT: b"the end\n"},
        max_bytes=CAP,
        lost={LogStream.STDOUT: 31_000_000},
    )
    stdout = _logs(client, alice, task["id"], stream="stdout")
    assert stdout["truncated"] is True
    assert stdout["text"] == (
        "[dockyard: earlier output dropped: 31000000 bytes of stdout]\nthe end\n"
    )


def test_trimming_never_splits_a_utf8_character(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    append_output(tasks_app, task["id"], "stdout", "é".encode() * 600, max_bytes=CAP + 1)
    text = _logs(client, alice, task["id"], stream="stdout")["text"]
    body = text.split("\n", 1)[1]
    assert body == "é" * 512
    assert "\ufffd" not in text


def test_output_that_is_not_utf8_or_holds_nul_is_kept_and_shown_safely(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    append_output(tasks_app, task["id"], "stdout", b"bin\x00\xff\xfe ok\n", max_bytes=CAP)
    assert stored_chunks(tasks_app, task["id"]) == [("stdout", b"bin\x00\xff\xfe ok\n")]
    assert _logs(client, alice, task["id"])["text"] == "bin\x00\ufffd\ufffd ok\n"


def test_logs_stay_readable_after_the_task_finished(tasks_app, client, alice, running):
    move_task(tasks_app, running["id"], TaskStatus.SUCCEEDED)
    logs = _logs(client, alice, running["id"], tail=1)
    assert (logs["status"], logs["text"]) == ("SUCCEEDED", "err 2\n")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"stream": "stdin"}, "stream"),
        ({"stream": "STDOUT"}, "stream"),
        ({"tail": 0}, "tail"),
        ({"tail": -3}, "tail"),
        ({"tail": "lots"}, "tail"),
        ({"tail": 100_001}, "tail"),
    ],
)
def test_bad_log_arguments_are_refused_with_a_field_error(client, alice, running, query, field):
    response = client.get(
        f"/v1/tasks/{running['id']}/logs", query_string=query, headers=alice.headers
    )
    assert response.status_code == 400
    assert field in response.json["fields"]


def test_another_users_logs_are_not_found(client, bob, running):
    response = client.get(f"/v1/tasks/{running['id']}/logs", headers=bob.headers)
    assert response.status_code == 404


def test_output_for_an_unknown_task_is_refused(tasks_app):
    with pytest.raises(service.TaskNotFound):
        append_output(tasks_app, str(uuid.uuid4()), "stdout", b"x", max_bytes=CAP)
