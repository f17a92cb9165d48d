"""Schedules through the gateway, against the real tasks and auth services and database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.tasks import firing
from services.tasks.schedules import SchedulePolicy
from tests.conftest import GraphQLClient, error_codes, register

SCHEDULE = """
    id name cron intervalSeconds timezone paused misfirePolicy overlapPolicy createdAt
    nextRuns(count: 3)
"""
CREATE = (
    f"mutation ($input: CreateScheduleInput!) {{ createSchedule(input: $input) {{ {SCHEDULE} }} }}"
)
GET = f"query ($id: ID!) {{ schedule(id: $id) {{ {SCHEDULE} }} }}"
PAUSE = f"mutation ($id: ID!) {{ pauseSchedule(id: $id) {{ {SCHEDULE} }} }}"
RESUME = f"mutation ($id: ID!) {{ resumeSchedule(id: $id) {{ {SCHEDULE} }} }}"
DELETE = "mutation ($id: ID!) { deleteSchedule(id: $id) }"
LIST = """
    query ($first: Int, $after: String) {
      schedules(first: $first, after: $after) {
        edges { cursor node { id name } } pageInfo { hasNextPage endCursor } totalCount
      }
    }
"""
RUNS = """
    query ($id: ID!, $first: Int, $after: String) {
      schedule(id: $id) {
        runs(first: $first, after: $after) {
          edges { node { id name status schedule { id name } } }
          pageInfo { hasNextPage endCursor }
          totalCount
        }
      }
    }
"""
TASK_SCHEDULE = "query ($id: ID!) { task(id: $id) { id schedule { id cron } } }"
TASK = {"name": "nightly", "image": "busybox:1.36", "command": ["echo", "hi"]}


def token(gql: GraphQLClient) -> str:
    """A fresh user's access token."""
    return register(gql)["accessToken"]


def create(gql: GraphQLClient, user: str, **fields) -> dict:
    """Create a schedule through the gateway (daily at 02:30 in Berlin unless `fields` say)."""
    schedule_input = {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "task": TASK, **fields}
    body = gql(CREATE, {"input": schedule_input}, token=user)
    assert "errors" not in body, body
    return body["data"]["createSchedule"]


def bad_input_fields(body: dict) -> dict[str, str]:
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    return error["extensions"]["fields"]


def test_a_created_schedule_reads_back_with_its_next_runs_in_its_timezone(gql):
    alice = token(gql)
    created = create(gql, alice, name="nightly", misfirePolicy="RUN_ONCE", overlapPolicy="SKIP")
    assert {k: created[k] for k in created if k not in ("id", "createdAt", "nextRuns")} == {
        "name": "nightly",
        "cron": "30 2 * * *",
        "intervalSeconds": None,
        "timezone": "Europe/Berlin",
        "paused": False,
        "misfirePolicy": "RUN_ONCE",
        "overlapPolicy": "SKIP",
    }
    times = [datetime.fromisoformat(value) for value in created["nextRuns"]]
    assert len(times) == 3 and times[0] > datetime.now(UTC)
    assert all(t.utcoffset() in (timedelta(hours=1), timedelta(hours=2)) for t in times)
    assert all((t.hour, t.minute) in ((2, 30), (3, 0)) for t in times)
    assert gql(GET, {"id": created["id"]}, token=alice)["data"]["schedule"] == created
    listed = gql(LIST, {}, token=alice)["data"]["schedules"]
    assert listed["totalCount"] == 1 and listed["edges"][0]["node"]["id"] == created["id"]


def test_the_defaults_are_utc_skip_and_allow(gql):
    alice = token(gql)
    body = gql(CREATE, {"input": {"intervalSeconds": 3600, "task": TASK}}, token=alice)
    created = body["data"]["createSchedule"]
    assert (created["timezone"], created["misfirePolicy"], created["overlapPolicy"]) == (
        "UTC",
        "SKIP",
        "ALLOW",
    )
    assert created["nextRuns"][0].endswith("+00:00")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"intervalSeconds": 3600}, "cron"),
        ({"cron": None}, "cron"),
        ({"cron": "every day"}, "cron"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"cron": None, "intervalSeconds": 5}, "intervalSeconds"),
        ({"task": {**TASK, "image": "NOT AN IMAGE"}}, "task.image"),
        ({"task": {**TASK, "timeoutSeconds": 10**6}}, "task.timeoutSeconds"),
        ({"task": None}, "task"),
    ],
)
def test_an_invalid_schedule_is_bad_user_input_naming_the_field(gql, fields, field):
    schedule_input = {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "task": TASK, **fields}
    body = gql(CREATE, {"input": schedule_input}, token=token(gql))
    assert field in bad_input_fields(body)
    assert body["data"] is None


def test_someone_elses_schedule_is_null_or_not_found(gql):
    alice, bob = token(gql), token(gql)
    schedule = create(gql, alice)
    assert gql(GET, {"id": schedule["id"]}, token=bob)["data"]["schedule"] is None
    assert gql(GET, {"id": "not-an-id"}, token=bob)["data"]["schedule"] is None
    for mutation in (PAUSE, RESUME, DELETE):
        for schedule_id in (schedule["id"], "not-an-id"):
            assert error_codes(gql(mutation, {"id": schedule_id}, token=bob)) == ["NOT_FOUND"]
    assert gql(LIST, {}, token=bob)["data"]["schedules"]["totalCount"] == 0
    assert gql(GET, {"id": schedule["id"]}, token=alice)["data"]["schedule"]["paused"] is False


def test_schedules_need_a_token(gql):
    assert error_codes(gql(LIST, {})) == ["UNAUTHENTICATED"]


def test_pause_resume_and_delete(gql):
    alice = token(gql)
    schedule = create(gql, alice)
    paused = gql(PAUSE, {"id": schedule["id"]}, token=alice)["data"]["pauseSchedule"]
    assert (paused["paused"], paused["nextRuns"]) == (True, [])
    resumed = gql(RESUME, {"id": schedule["id"]}, token=alice)["data"]["resumeSchedule"]
    assert (resumed["paused"], resumed["nextRuns"]) == (False, schedule["nextRuns"])
    assert gql(DELETE, {"id": schedule["id"]}, token=alice)["data"] == {"deleteSchedule": True}
    assert gql(GET, {"id": schedule["id"]}, token=alice)["data"]["schedule"] is None
    assert error_codes(gql(DELETE, {"id": schedule["id"]}, token=alice)) == ["NOT_FOUND"]


def test_runs_are_the_tasks_the_schedule_started_and_each_knows_its_schedule(gql, tasks_app):
    alice = token(gql)
    schedule = create(gql, alice, cron=None, timezone="UTC", intervalSeconds=900)
    first_fire = datetime.fromisoformat(schedule["nextRuns"][0])
    ctx = tasks_app.extensions["tasks"]
    for period in range(3):
        firing.fire_all_due(
            ctx.uow,
            now=first_fire + period * timedelta(seconds=900),
            policy=SchedulePolicy.from_settings(ctx.settings),
            task_policy=ctx.policy,
        )
    page = gql(RUNS, {"id": schedule["id"], "first": 2}, token=alice)["data"]["schedule"]["runs"]
    assert page["totalCount"] == 3 and page["pageInfo"]["hasNextPage"] is True
    rest = gql(RUNS, {"id": schedule["id"], "after": page["pageInfo"]["endCursor"]}, token=alice)[
        "data"
    ]["schedule"]["runs"]
    nodes = [edge["node"] for edge in page["edges"] + rest["edges"]]
    assert len({node["id"] for node in nodes}) == 3
    assert {(n["name"], n["status"]) for n in nodes} == {("nightly", "PENDING")}
    assert {n["schedule"]["id"] for n in nodes} == {schedule["id"]}

    run = nodes[0]["id"]
    read = gql(TASK_SCHEDULE, {"id": run}, token=alice)["data"]["task"]
    assert read["schedule"] == {"id": schedule["id"], "cron": None}
    gql(DELETE, {"id": schedule["id"]}, token=alice)
    assert gql(TASK_SCHEDULE, {"id": run}, token=alice)["data"]["task"]["schedule"] is None


WORKFLOW = {
    "name": "nightly",
    "steps": [
        {"name": "extract", "task": TASK},
        {"name": "load", "task": TASK, "dependsOn": ["extract"]},
    ],
}


def test_a_schedule_may_start_a_workflow_instead_of_a_task(gql):
    alice = token(gql)
    body = gql(
        CREATE,
        {"input": {"intervalSeconds": 3600, "workflow": WORKFLOW}},
        token=alice,
    )
    assert "errors" not in body, body
    assert body["data"]["createSchedule"]["intervalSeconds"] == 3600


@pytest.mark.parametrize(
    ("unit", "field"),
    [
        ({"task": TASK, "workflow": WORKFLOW}, "task"),
        ({}, "task"),
        (
            {"workflow": {"steps": [{"name": "a", "task": TASK, "dependsOn": ["a"]}]}},
            "workflow.steps",
        ),
    ],
)
def test_a_schedule_needs_exactly_one_valid_task_or_workflow(gql, unit, field):
    body = gql(CREATE, {"input": {"intervalSeconds": 3600, **unit}}, token=token(gql))
    assert field in bad_input_fields(body), body
