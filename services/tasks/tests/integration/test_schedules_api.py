"""The schedules REST API: create, read, list, pause, resume, delete, next runs, runs, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.tasks import firing
from services.tasks.models import saga_table
from services.tasks.schedules import SchedulePolicy
from services.tasks.tests.factories import task_payload

SECRET = "hunter2-do-not-leak"


@pytest.fixture(scope="module")
def strict_client(make_app):
    """A client of a tasks app whose schedules may fire at most every two minutes."""
    return make_app(SCHEDULE_MIN_INTERVAL_SECONDS=120).test_client()


def schedule_payload(**overrides):
    """A valid create-schedule body: every day at 09:00 in Berlin."""
    body = {"cron": "0 9 * * *", "timezone": "Europe/Berlin", "task": task_payload()}
    body.update(overrides)
    return body


def create(client, user, **overrides) -> dict:
    response = client.post(
        "/v1/schedules", json=schedule_payload(**overrides), headers=user.headers
    )
    assert response.status_code == 201, response.json
    return response.json


def refused(client, user, **overrides) -> dict[str, str]:
    response = client.post(
        "/v1/schedules", json=schedule_payload(**overrides), headers=user.headers
    )
    assert response.status_code == 400, response.json
    assert response.json["code"] == "BAD_USER_INPUT"
    return response.json["fields"]


def test_a_cron_schedule_is_created_with_its_next_run_in_its_timezone(client, alice):
    env = [{"name": "API_TOKEN", "value": SECRET}]
    schedule = create(client, alice, name="morning", task=task_payload(env=env))
    assert schedule["name"] == "morning"
    assert (schedule["cron"], schedule["interval_seconds"]) == ("0 9 * * *", None)
    assert (schedule["timezone"], schedule["paused"]) == ("Europe/Berlin", False)
    assert (schedule["misfire_policy"], schedule["overlap_policy"]) == ("SKIP", "ALLOW")
    next_run = datetime.fromisoformat(schedule["next_run_at"])
    assert next_run.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
    assert (next_run.hour, next_run.minute) == (9, 0)
    assert schedule["task"]["env"] == [{"name": "API_TOKEN"}]
    assert schedule["task"]["image"] == "busybox:1.36"
    detail = client.get(f"/v1/schedules/{schedule['id']}", headers=alice.headers)
    assert detail.json == schedule
    assert SECRET not in detail.get_data(as_text=True)


def test_an_interval_schedule_defaults_to_utc(client, alice):
    body = {"interval_seconds": 3600, "task": task_payload()}
    response = client.post("/v1/schedules", json=body, headers=alice.headers)
    assert response.status_code == 201, response.json
    schedule = response.json
    assert (schedule["interval_seconds"], schedule["timezone"]) == (3600, "UTC")
    next_run = datetime.fromisoformat(schedule["next_run_at"])
    assert timedelta(minutes=59) < next_run - datetime.now(UTC) <= timedelta(hours=1)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"interval_seconds": 60}, "cron", "exactly one of cron and interval_seconds"),
        ({"cron": None}, "cron", "exactly one of cron and interval_seconds"),
        ({"cron": "0 9 * *"}, "cron", "Must have 5 fields"),
        ({"cron": "0 25 * * *"}, "cron", "not a valid cron expression"),
        ({"cron": "0 0 30 2 *"}, "cron", "never fires"),
        ({"cron": "* * * * *"}, "cron", "at most once every 120 seconds"),
        ({"timezone": "Europe/Atlantis"}, "timezone", "Unknown timezone"),
        ({"cron": None, "interval_seconds": 30}, "interval_seconds", "at least 120 seconds"),
        ({"cron": None, "interval_seconds": "60"}, "interval_seconds", "Not a valid integer"),
        ({"cron": None, "interval_seconds": 10**12}, "interval_seconds", "less than or equal"),
        ({"misfire_policy": "SOMETIMES"}, "misfire_policy", "Must be one of"),
        ({"overlap_policy": "QUEUE"}, "overlap_policy", "Must be one of"),
        ({"task": task_payload(image="Not An Image!")}, "task.image", ""),
        ({"task": task_payload(command=[])}, "task.command", ""),
        ({"task": task_payload(memory_limit_mb=10**6)}, "task.memory_limit_mb", "at most"),
        ({"task": None}, "task", ""),
        ({"owner_id": "someone"}, "owner_id", "Unknown field"),
    ],
)
def test_an_invalid_schedule_is_refused_naming_the_field(
    strict_client, alice, overrides, field, message
):
    fields = refused(strict_client, alice, **overrides)
    assert field in fields, fields
    assert message in fields[field]


def test_a_user_may_have_only_so_many_schedules(make_app, alice, bob):
    client = make_app(SCHEDULES_MAX_PER_USER=2).test_client()
    first = create(client, alice)
    create(client, alice)
    response = client.post("/v1/schedules", json=schedule_payload(), headers=alice.headers)
    assert response.status_code == 409 and response.json["code"] == "CONFLICT"
    assert "2 schedules" in response.json["message"]
    create(client, bob)  # per user
    assert client.delete(f"/v1/schedules/{first['id']}", headers=alice.headers).status_code == 204
    create(client, alice)


def test_someone_elses_schedule_is_not_found_whatever_the_operation(client, alice, bob):
    schedule = create(client, alice)
    path = f"/v1/schedules/{schedule['id']}"
    for method, suffix in [
        ("get", ""),
        ("delete", ""),
        ("post", "/pause"),
        ("post", "/resume"),
        ("get", "/next-runs"),
        ("get", "/runs"),
    ]:
        response = getattr(client, method)(path + suffix, headers=bob.headers)
        assert response.status_code == 404, (method, suffix, response.json)
        assert response.json["code"] == "NOT_FOUND"
    assert client.get("/v1/schedules", headers=bob.headers).json["total_count"] == 0
    assert client.get(path, headers=alice.headers).json["paused"] is False


def test_a_schedule_id_that_is_no_uuid_is_bad_input(client, alice):
    response = client.get("/v1/schedules/not-a-uuid", headers=alice.headers)
    assert response.status_code == 400 and response.json["fields"] == {"schedule_id": "Not a UUID."}


def test_schedules_are_listed_newest_first_a_page_at_a_time(client, alice):
    made = [create(client, alice, name=f"s{index}")["id"] for index in range(3)]
    first = client.get("/v1/schedules?first=2", headers=alice.headers).json
    assert first["total_count"] == 3 and first["page_info"]["has_next_page"] is True
    after = first["page_info"]["end_cursor"]
    rest = client.get(f"/v1/schedules?first=2&after={after}", headers=alice.headers).json
    listed = [edge["node"]["id"] for edge in first["edges"] + rest["edges"]]
    assert listed == made[::-1]


def test_pausing_stops_the_next_runs_and_resuming_brings_them_back(client, alice):
    schedule = create(client, alice)
    path = f"/v1/schedules/{schedule['id']}"
    paused = client.post(f"{path}/pause", headers=alice.headers).json
    assert (paused["paused"], paused["next_run_at"]) == (True, None)
    assert client.post(f"{path}/pause", headers=alice.headers).json == paused
    assert client.get(f"{path}/next-runs", headers=alice.headers).json == {"next_runs": []}
    resumed = client.post(f"{path}/resume", headers=alice.headers).json
    assert resumed["paused"] is False and resumed["next_run_at"] == schedule["next_run_at"]


def test_next_runs_are_the_coming_fire_times_with_the_timezones_offset(client, alice):
    schedule = create(client, alice, cron="30 2 * * *")
    response = client.get(
        f"/v1/schedules/{schedule['id']}/next-runs?count=3", headers=alice.headers
    )
    times = [datetime.fromisoformat(value) for value in response.json["next_runs"]]
    assert len(times) == 3 and times[0] > datetime.now(UTC)
    assert all(t.utcoffset() in (timedelta(hours=1), timedelta(hours=2)) for t in times)
    assert times[1] - times[0] >= timedelta(hours=23)
    assert response.json["next_runs"][0] == schedule["next_run_at"]
    too_many = client.get(
        f"/v1/schedules/{schedule['id']}/next-runs?count=101", headers=alice.headers
    )
    assert too_many.status_code == 400 and "count" in too_many.json["fields"]


def _fire(tasks_app, at: datetime) -> None:
    ctx = tasks_app.extensions["tasks"]
    firing.fire_all_due(
        ctx.uow,
        now=at,
        policy=SchedulePolicy.from_settings(ctx.settings),
        task_policy=ctx.policy,
    )


def test_runs_are_the_tasks_the_schedule_started_and_outlive_it(tasks_app, client, alice):
    schedule = create(client, alice, cron=None, interval_seconds=600, timezone="UTC")
    path = f"/v1/schedules/{schedule['id']}"
    assert client.get(f"{path}/runs", headers=alice.headers).json["total_count"] == 0
    first_fire = datetime.fromisoformat(schedule["next_run_at"])
    _fire(tasks_app, first_fire)
    _fire(tasks_app, first_fire + timedelta(seconds=600))
    page = client.get(f"{path}/runs?first=1", headers=alice.headers).json
    assert page["total_count"] == 2 and page["page_info"]["has_next_page"] is True
    newest = page["edges"][0]["node"]
    after = page["page_info"]["end_cursor"]
    older = client.get(f"{path}/runs?after={after}", headers=alice.headers).json["edges"][0]["node"]
    assert newest["created_at"] >= older["created_at"]
    assert {newest["schedule_id"], older["schedule_id"]} == {schedule["id"]}
    task = client.get(f"/v1/tasks/{newest['id']}", headers=alice.headers).json
    assert (task["schedule_id"], task["name"], task["status"]) == (
        schedule["id"],
        "hello",
        "PENDING",
    )
    assert client.get(path, headers=alice.headers).json["last_fire_at"] is not None

    assert client.delete(path, headers=alice.headers).status_code == 204
    assert client.get(path, headers=alice.headers).status_code == 404
    assert client.get(f"{path}/runs", headers=alice.headers).status_code == 404
    kept = client.get(f"/v1/tasks/{newest['id']}", headers=alice.headers).json
    assert kept["schedule_id"] is None


def test_a_scheduled_task_with_an_input_file_asks_for_its_lease_at_every_run(
    tasks_app, client, alice
):
    file_id = "6f1c0d9e-1111-4444-8888-000000000001"
    schedule = create(
        client,
        alice,
        cron=None,
        interval_seconds=600,
        timezone="UTC",
        task=task_payload(input_file_id=file_id),
    )
    assert schedule["task"]["input_file_id"] == file_id
    _fire(tasks_app, datetime.fromisoformat(schedule["next_run_at"]))
    runs = client.get(f"/v1/schedules/{schedule['id']}/runs", headers=alice.headers).json
    run = runs["edges"][0]["node"]
    assert (run["input_file_id"], run["status"]) == (file_id, "PENDING")
    with tasks_app.extensions["tasks"].uow() as uow:
        row = uow.session.execute(
            saga_table.select().where(saga_table.c.subject == run["id"])
        ).one()
    assert (row.kind, row.step, row.data["file_id"]) == ("task_input_file", "lease", file_id)
