"""Reading output on: numbered chunks after a given one, and `logs?follow=true` streams."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from services.tasks import logs
from services.tasks.models import LogStream, TaskStatus
from services.tasks.tests.factories import (
    append_output,
    create_task,
    move_task,
    outbox_events,
    task_in,
)

CAP = 1024


def _chunks(client, user, task_id, **query):
    response = client.get(
        f"/v1/tasks/{task_id}/logs/chunks", query_string=query, headers=user.headers
    )
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def running(tasks_app, client, alice):
    """A running task of alice's with three chunks of output."""
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    for stream, data in [("stdout", b"a\n"), ("stderr", b"b\n"), ("stdout", b"c\n")]:
        append_output(tasks_app, task["id"], stream, data, max_bytes=CAP)
    return task


def test_chunks_come_in_arrival_order_and_read_on_after_the_last_one(
    tasks_app, client, alice, running
):
    first = _chunks(client, alice, running["id"])
    assert [(c["stream"], c["text"]) for c in first["chunks"]] == [
        ("stdout", "a\n"),
        ("stderr", "b\n"),
        ("stdout", "c\n"),
    ]
    assert (first["status"], first["has_more"]) == ("RUNNING", False)
    assert first["next_after"] == first["chunks"][-1]["id"]
    assert all(c["at"] for c in first["chunks"])

    nothing_new = _chunks(client, alice, running["id"], after=first["next_after"])
    assert (nothing_new["chunks"], nothing_new["next_after"]) == ([], first["next_after"])

    append_output(tasks_app, running["id"], "stderr", b"d\n", max_bytes=CAP)
    later = _chunks(client, alice, running["id"], after=first["next_after"])
    assert [(c["stream"], c["text"]) for c in later["chunks"]] == [("stderr", "d\n")]


def test_a_limit_pages_through_without_gaps_or_repeats(client, alice, running):
    texts, after = [], None
    while True:
        query = {"limit": 1} if after is None else {"limit": 1, "after": after}
        page = _chunks(client, alice, running["id"], **query)
        texts += [c["text"] for c in page["chunks"]]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert texts == ["a\n", "b\n", "c\n"]


def test_one_stream_can_be_read_alone(client, alice, running):
    page = _chunks(client, alice, running["id"], stream="stderr")
    assert [c["text"] for c in page["chunks"]] == ["b\n"]


def test_dropped_output_is_counted(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    append_output(tasks_app, task["id"], "stdout", b"x" * 10, max_bytes=4)
    page = _chunks(client, alice, task["id"])
    assert page["dropped"] == {"stdout": 6, "stderr": 0}
    assert [c["text"] for c in page["chunks"]] == ["xxxx"]


def test_storing_output_raises_one_event_per_batch_without_the_output(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    append_output(tasks_app, task["id"], "stdout", b"secret-ish output\n", max_bytes=CAP)
    appended = [
        e for e in outbox_events(tasks_app, task["id"]) if e["type"] == "TaskOutputAppended"
    ]
    assert len(appended) == 1
    payload = appended[0]["payload"]
    assert payload["bytes"] == len(b"secret-ish output\n")
    assert payload["last_chunk_id"] == _chunks(client, alice, task["id"])["next_after"]
    assert "secret-ish" not in str(payload)


def test_a_batch_of_both_streams_is_one_transaction_and_one_event(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    logs.append_output(
        tasks_app.extensions["tasks"].uow(),
        task_id=uuid.UUID(task["id"]),
        batches={LogStream.STDOUT: b"out\n", LogStream.STDERR: b"error!\n"},
        max_bytes=CAP,
    )
    page = _chunks(client, alice, task["id"])
    assert [(c["stream"], c["text"]) for c in page["chunks"]] == [
        ("stdout", "out\n"),
        ("stderr", "error!\n"),
    ]
    events = outbox_events(tasks_app, task["id"])
    (event,) = [e for e in events if e["type"] == "TaskOutputAppended"]
    assert event["payload"]["bytes"] == len(b"out\n") + len(b"error!\n")
    assert event["payload"]["last_chunk_id"] == page["chunks"][-1]["id"]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"after": -1}, "after"), ({"after": "x"}, "after"), ({"limit": 0}, "limit")],
)
def test_bad_chunk_arguments_are_400_naming_the_field(client, alice, running, query, field):
    response = client.get(
        f"/v1/tasks/{running['id']}/logs/chunks", query_string=query, headers=alice.headers
    )
    assert response.status_code == 400
    assert response.json["code"] == "BAD_USER_INPUT"
    assert field in response.json["fields"]


def test_another_users_chunks_and_follow_are_404(client, bob, running):
    for path in ("logs/chunks", "logs?follow=true"):
        response = client.get(f"/v1/tasks/{running['id']}/{path}", headers=bob.headers)
        assert response.status_code == 404, path


def test_following_a_finished_task_returns_its_output_and_ends(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    append_output(tasks_app, task["id"], "stdout", b"done\n", max_bytes=CAP)
    move_task(tasks_app, task["id"], TaskStatus.SUCCEEDED)
    response = client.get(
        f"/v1/tasks/{task['id']}/logs", query_string={"follow": "true"}, headers=alice.headers
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "done\n"


def test_following_a_running_task_streams_new_output_until_it_finishes(
    tasks_app, client, alice, running
):
    def engine():
        time.sleep(0.6)
        append_output(tasks_app, running["id"], "stdout", "é-1\n".encode(), max_bytes=CAP)
        time.sleep(0.6)
        append_output(tasks_app, running["id"], "stderr", b"e-2\n", max_bytes=CAP)
        move_task(tasks_app, running["id"], TaskStatus.SUCCEEDED)

    response = client.get(
        f"/v1/tasks/{running['id']}/logs",
        query_string={"follow": "true"},
        headers=alice.headers,
        buffered=False,
    )
    assert response.status_code == 200
    thread = threading.Thread(target=engine)
    started = time.monotonic()
    thread.start()
    pieces = [(time.monotonic() - started, piece.decode()) for piece in response.response if piece]
    thread.join()
    response.close()
    assert "".join(text for _, text in pieces) == "a\nb\nc\né-1\ne-2\n"
    # What was stored came at once, the rest as it was stored, not all at the end.
    assert pieces[0] == (pytest.approx(0, abs=0.5), "a\nb\nc\n")
    arrival = {text: at for at, text in pieces}
    assert arrival["é-1\n"] < 1.2 < arrival["e-2\n"]


def test_following_with_a_tail_starts_from_the_last_lines(tasks_app, client, alice, running):
    move_task(tasks_app, running["id"], TaskStatus.SUCCEEDED)
    response = client.get(
        f"/v1/tasks/{running['id']}/logs",
        query_string={"follow": "true", "tail": 1},
        headers=alice.headers,
    )
    assert response.get_data(as_text=True) == "c\n"


def test_following_a_queued_task_waits_for_it(tasks_app, client, alice):
    task = create_task(client, alice)
    response = client.get(
        f"/v1/tasks/{task['id']}/logs",
        query_string={"follow": "true"},
        headers=alice.headers,
        buffered=False,
    )

    def engine():
        time.sleep(0.3)
        move_task(tasks_app, task["id"], TaskStatus.QUEUED, TaskStatus.RUNNING)
        append_output(tasks_app, task["id"], "stdout", b"late\n", max_bytes=CAP)
        move_task(tasks_app, task["id"], TaskStatus.FAILED)

    thread = threading.Thread(target=engine)
    thread.start()
    text = b"".join(response.response).decode()
    thread.join()
    response.close()
    assert text == "late\n"


def test_log_streams_beyond_the_limit_are_refused_until_one_closes(make_app, alice):
    app = make_app(LOG_FOLLOW_MAX_STREAMS=1, LOG_FOLLOW_POLL_SECONDS=0.05)
    client = app.test_client()
    task = task_in(app, client, alice, TaskStatus.RUNNING)
    path, query = f"/v1/tasks/{task['id']}/logs", {"follow": "true"}

    first = client.get(path, query_string=query, headers=alice.headers, buffered=False)
    assert first.status_code == 200
    refused = client.get(path, query_string=query, headers=alice.headers, buffered=False)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert refused.json["code"] == "SERVICE_UNAVAILABLE"
    # A plain read needs no permit.
    assert client.get(path, headers=alice.headers).status_code == 200

    first.close()
    again = client.get(path, query_string=query, headers=alice.headers, buffered=False)
    assert again.status_code == 200
    again.close()
    # A refused or failed attempt gives its permit back too.
    missing = client.get(
        f"/v1/tasks/{uuid.uuid4()}/logs", query_string=query, headers=alice.headers
    )
    assert missing.status_code == 404
    last = client.get(path, query_string=query, headers=alice.headers, buffered=False)
    assert last.status_code == 200
    last.close()


def test_chunks_say_where_they_start_in_their_stream(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    for data in (b"aaaa\n", b"cccc\n", b"dddddddd\n"):
        append_output(tasks_app, task["id"], "stdout", data, max_bytes=10)
    page = _chunks(client, alice, task["id"])
    # "aaaa\n" was dropped whole and "cccc" cut from the front: 9 bytes before what is kept.
    assert [(c["offset"], c["size"], c["text"]) for c in page["chunks"]] == [
        (9, 1, "\n"),
        (10, 9, "dddddddd\n"),
    ]


def test_a_follower_is_told_of_output_dropped_between_two_reads(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    append_output(tasks_app, task["id"], "stdout", b"aaaa\n", max_bytes=10)
    response = client.get(
        f"/v1/tasks/{task['id']}/logs",
        query_string={"follow": "true"},
        headers=alice.headers,
        buffered=False,
    )
    # The follow has sent "aaaa\n"; before it reads again, the cap drops 4 bytes it never saw.
    append_output(tasks_app, task["id"], "stdout", b"cccc\n", max_bytes=10)
    append_output(tasks_app, task["id"], "stdout", b"dddddddd\n", max_bytes=10)
    move_task(tasks_app, task["id"], TaskStatus.SUCCEEDED)
    text = b"".join(response.response).decode()
    response.close()
    assert text == ("aaaa\n[dockyard: earlier output dropped: 4 bytes of stdout]\n\ndddddddd\n")
