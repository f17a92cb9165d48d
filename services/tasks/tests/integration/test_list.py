"""Listing tasks: newest first, keyset pages without duplicates or gaps, status filter, owners."""

from __future__ import annotations

import pytest

from services.tasks.models import TaskStatus
from services.tasks.tests.factories import create_task, insert_tasks_at_once, task_in


def _pages(client, user, *, first: int, **query) -> list[list[dict]]:
    pages, after = [], None
    while True:
        params = {"first": first, **query, **({"after": after} if after else {})}
        response = client.get("/v1/tasks", query_string=params, headers=user.headers)
        assert response.status_code == 200, response.json
        body = response.json
        pages.append(body["edges"])
        if not body["page_info"]["has_next_page"]:
            assert len(pages) * first >= body["total_count"]
            return pages
        assert body["page_info"]["end_cursor"] == body["edges"][-1]["cursor"]
        after = body["page_info"]["end_cursor"]


def test_an_empty_list_has_no_page_after_it(client, alice):
    response = client.get("/v1/tasks", headers=alice.headers)
    assert response.json == {
        "edges": [],
        "page_info": {"has_next_page": False, "end_cursor": None},
        "total_count": 0,
    }


def test_tasks_come_newest_first_in_pages_without_duplicates_or_gaps(client, alice):
    created = [create_task(client, alice, name=f"t{i}")["id"] for i in range(7)]
    pages = _pages(client, alice, first=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    listed = [edge["node"]["id"] for page in pages for edge in page]
    assert listed == list(reversed(created))
    first_page = client.get("/v1/tasks?first=3", headers=alice.headers).json
    assert first_page["total_count"] == 7
    assert first_page["page_info"]["has_next_page"] is True


def test_tasks_created_in_the_same_instant_are_paged_without_duplicates_or_gaps(
    tasks_app, client, alice
):
    ids = insert_tasks_at_once(tasks_app, alice, 9)
    listed = [edge["node"]["id"] for page in _pages(client, alice, first=2) for edge in page]
    assert sorted(listed) == sorted(ids)
    assert len(listed) == len(set(listed)) == 9


def test_a_task_created_while_paging_does_not_disturb_the_pages_after(client, alice):
    older = [create_task(client, alice)["id"] for _ in range(4)]
    first = client.get("/v1/tasks?first=2", headers=alice.headers).json
    newer = create_task(client, alice)["id"]
    cursor = first["page_info"]["end_cursor"]
    rest = client.get(f"/v1/tasks?first=10&after={cursor}", headers=alice.headers).json
    assert [e["node"]["id"] for e in first["edges"] + rest["edges"]] == list(reversed(older))
    assert rest["total_count"] == 5 and newer not in {e["node"]["id"] for e in rest["edges"]}


def test_the_status_filter_lists_and_counts_only_that_status(tasks_app, client, alice):
    pending = [create_task(client, alice)["id"] for _ in range(3)]
    running = [task_in(tasks_app, client, alice, TaskStatus.RUNNING)["id"] for _ in range(3)]
    done = task_in(tasks_app, client, alice, TaskStatus.SUCCEEDED)["id"]
    for status, expected in [("PENDING", pending), ("RUNNING", running), ("SUCCEEDED", [done])]:
        pages = _pages(client, alice, first=2, status=status)
        listed = [edge["node"]["id"] for page in pages for edge in page]
        assert listed == list(reversed(expected))
        assert {edge["node"]["status"] for page in pages for edge in page} == {status}
    assert client.get("/v1/tasks?status=FAILED", headers=alice.headers).json["total_count"] == 0


def test_users_see_only_their_own_tasks(client, alice, bob):
    mine = create_task(client, alice)["id"]
    theirs = create_task(client, bob)["id"]
    alice_list = client.get("/v1/tasks", headers=alice.headers).json
    bob_list = client.get("/v1/tasks", headers=bob.headers).json
    assert [e["node"]["id"] for e in alice_list["edges"]] == [mine]
    assert [e["node"]["id"] for e in bob_list["edges"]] == [theirs]
    assert alice_list["total_count"] == bob_list["total_count"] == 1


def test_a_cursor_only_positions_the_list_it_cannot_reveal_another_users_tasks(client, alice, bob):
    create_task(client, bob)
    create_task(client, alice)
    bob_cursor = client.get("/v1/tasks", headers=bob.headers).json["page_info"]["end_cursor"]
    response = client.get(f"/v1/tasks?after={bob_cursor}", headers=alice.headers)
    assert response.status_code == 200
    assert all(e["node"]["id"] for e in response.json["edges"])
    assert response.json["total_count"] == 1


def test_list_items_have_the_detail_shape(client, alice):
    task = create_task(client, alice, env=[{"name": "K", "value": "secret-v"}])
    (edge,) = client.get("/v1/tasks", headers=alice.headers).json["edges"]
    assert edge["node"] == task
    assert "secret-v" not in str(edge)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("first=0", "first"),
        ("first=101", "first"),
        ("first=ten", "first"),
        ("status=DONE", "status"),
        ("status=pending", "status"),
        ("after=not-a-cursor", "after"),
        ("after=" + "QUJD", "after"),
        ("after=", "after"),
    ],
)
def test_bad_list_arguments_are_refused_with_a_field_error(client, alice, query, field):
    response = client.get(f"/v1/tasks?{query}", headers=alice.headers)
    assert response.status_code == 400, response.json
    assert response.json["code"] == "BAD_USER_INPUT"
    assert field in response.json["fields"]


def test_first_defaults_to_twenty_and_may_be_a_hundred(tasks_app, client, alice):
    insert_tasks_at_once(tasks_app, alice, 25)
    assert len(client.get("/v1/tasks", headers=alice.headers).json["edges"]) == 20
    assert len(client.get("/v1/tasks?first=100", headers=alice.headers).json["edges"]) == 25
