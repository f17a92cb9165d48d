"""Conditional reads: every whole JSON read carries an ETag, and If-None-Match answers 304."""

from __future__ import annotations

import pytest

from services.tasks.models import LogStream, TaskStatus
from services.tasks.tests.factories import append_output, create_task, move_task, task_in

CAP = 1024 * 1024
READS = [
    "/v1/tasks/{id}",
    "/v1/tasks",
    "/v1/tasks/{id}/logs",
    "/v1/tasks/{id}/logs/chunks",
]


@pytest.mark.parametrize("path", READS)
def test_a_read_with_a_matching_if_none_match_is_not_modified_and_has_no_body(client, alice, path):
    task = create_task(client, alice)
    url = path.format(id=task["id"])
    first = client.get(url, headers=alice.headers)
    assert first.status_code == 200
    assert first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = client.get(url, headers={**alice.headers, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]


@pytest.mark.parametrize("path", READS)
def test_a_stale_if_none_match_gets_the_whole_answer(client, alice, path):
    task = create_task(client, alice)
    url = path.format(id=task["id"])
    response = client.get(url, headers={**alice.headers, "If-None-Match": '"not-the-etag"'})
    assert response.status_code == 200
    assert response.json


@pytest.mark.parametrize("path", ["/v1/tasks/{id}", "/v1/tasks"])
def test_a_task_that_changed_gets_a_new_etag(tasks_app, client, alice, path):
    task = create_task(client, alice)
    url = path.format(id=task["id"])
    before = client.get(url, headers=alice.headers).headers["ETag"]
    move_task(tasks_app, task["id"], TaskStatus.QUEUED)
    after = client.get(url, headers={**alice.headers, "If-None-Match": before})
    assert after.status_code == 200
    assert after.headers["ETag"] != before
    assert TaskStatus.QUEUED in after.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/v1/tasks/{id}/logs", "/v1/tasks/{id}/logs/chunks"])
def test_new_output_gets_the_logs_a_new_etag(tasks_app, client, alice, path):
    task = task_in(tasks_app, client, alice, TaskStatus.RUNNING)
    url = path.format(id=task["id"])
    append_output(tasks_app, task["id"], LogStream.STDOUT, b"first\n", CAP)
    before = client.get(url, headers=alice.headers).headers["ETag"]
    append_output(tasks_app, task["id"], LogStream.STDOUT, b"second\n", CAP)
    after = client.get(url, headers={**alice.headers, "If-None-Match": before})
    assert after.status_code == 200
    assert after.headers["ETag"] != before
    assert "second" in after.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/v1/tasks/{id}", "/v1/tasks/{id}/logs"])
def test_another_user_with_the_owners_etag_still_gets_not_found(client, alice, bob, path):
    task = create_task(client, alice)
    url = path.format(id=task["id"])
    etag = client.get(url, headers=alice.headers).headers["ETag"]
    response = client.get(url, headers={**bob.headers, "If-None-Match": etag})
    assert response.status_code == 404
    assert response.json["code"] == "NOT_FOUND"
    assert "ETag" not in response.headers


def test_the_same_page_for_another_user_has_another_etag(client, alice, bob):
    create_task(client, alice)
    mine = client.get("/v1/tasks", headers=alice.headers)
    theirs = client.get("/v1/tasks", headers={**bob.headers, "If-None-Match": mine.headers["ETag"]})
    assert theirs.status_code == 200
    assert theirs.json["edges"] == []


def test_a_followed_log_stream_has_no_etag(tasks_app, client, alice):
    task = task_in(tasks_app, client, alice, TaskStatus.SUCCEEDED)
    response = client.get(f"/v1/tasks/{task['id']}/logs?follow=true", headers=alice.headers)
    assert response.status_code == 200
    assert "ETag" not in response.headers
    response.close()
