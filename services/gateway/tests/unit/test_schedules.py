"""Schedule operations over a fake tasks client: argument mapping, and what is fetched when."""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.clients import Caller
from services.gateway.tests.conftest import TASK, FakeTasksClient, gql

AUTH = {"Authorization": "Bearer t"}
SCHEDULE_ID = "9b1d3c5e-2f4a-4b6c-8d0e-1a2b3c4d5e6f"
SCHEDULE = {
    "id": SCHEDULE_ID,
    "name": "nightly",
    "cron": "30 2 * * *",
    "interval_seconds": None,
    "timezone": "Europe/Berlin",
    "paused": False,
    "misfire_policy": "SKIP",
    "overlap_policy": "ALLOW",
    "next_run_at": "2026-10-26T02:30:00+01:00",
    "last_fire_at": None,
    "task": {"image": "busybox:1.36", "command": ["true"], "env": []},
    "created_at": "2026-10-24T12:00:00+02:00",
}
NEXT_RUNS = ["2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"]


class FakeScheduleClient(FakeTasksClient):
    """The fake tasks client, answering the schedule calls too."""

    async def create_schedule(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned creation."""
        return self._answer("create_schedule", caller, SCHEDULE, **kwargs)

    async def get_schedule(self, caller: Caller, **kwargs: Any) -> dict[str, Any] | None:
        """Canned schedule."""
        return self._answer("get_schedule", caller, SCHEDULE, **kwargs)

    async def pause_schedule(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned pause."""
        return self._answer("pause_schedule", caller, {**SCHEDULE, "paused": True}, **kwargs)

    async def next_runs(self, caller: Caller, **kwargs: Any) -> list[str]:
        """Canned fire times."""
        return self._answer("next_runs", caller, NEXT_RUNS, **kwargs)

    async def get_task(self, caller: Caller, **kwargs: Any) -> dict[str, Any] | None:
        """A task a schedule started."""
        return self._answer("get_task", caller, {**TASK, "schedule_id": SCHEDULE_ID}, **kwargs)


@pytest.fixture
def fake_tasks() -> FakeScheduleClient:
    """The fake tasks client the app under test calls."""
    return FakeScheduleClient()


def _calls(fake) -> list[str]:
    return [name for name, _caller, _kwargs in fake.calls]


def test_create_schedule_sends_the_input_with_rest_field_names(client, fake_tasks):
    query = "mutation ($input: CreateScheduleInput!) { createSchedule(input: $input) { id } }"
    schedule_input = {
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "overlapPolicy": "CANCEL_PREVIOUS",
        "task": {"image": "busybox:1.36", "command": ["true"], "timeoutSeconds": 5},
    }
    response = gql(client, query, {"input": schedule_input}, headers=AUTH)
    assert response.json() == {"data": {"createSchedule": {"id": SCHEDULE_ID}}}
    ((name, _caller, kwargs),) = fake_tasks.calls
    assert name == "create_schedule"
    spec = dict(kwargs["spec"])
    task = spec.pop("task")
    assert spec == {
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "overlap_policy": "CANCEL_PREVIOUS",
        "misfire_policy": "SKIP",
    }
    # CreateTaskInput grows with other features (defaulted fields); these must be there as sent.
    assert (
        task.items()
        >= {
            "image": "busybox:1.36",
            "command": ["true"],
            "timeout_seconds": 5,
        }.items()
    )


def test_a_schedule_maps_the_rest_fields_and_fetches_next_runs_only_when_selected(
    client, fake_tasks
):
    plain = gql(client, 'query { schedule(id: "x") { id cron timezone paused } }', headers=AUTH)
    assert plain.json()["data"]["schedule"] == {
        "id": SCHEDULE_ID,
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "paused": False,
    }
    assert _calls(fake_tasks) == ["get_schedule"]
    query = 'query { schedule(id: "x") { misfirePolicy nextRuns(count: 2) createdAt } }'
    answer = gql(client, query, headers=AUTH).json()["data"]["schedule"]
    assert answer == {
        "misfirePolicy": "SKIP",
        "nextRuns": NEXT_RUNS,
        "createdAt": "2026-10-24T12:00:00+02:00",
    }
    assert fake_tasks.calls[-1][2] == {"schedule_id": SCHEDULE_ID, "count": 2}


def test_a_paused_schedule_has_no_next_runs_without_asking(client, fake_tasks):
    query = 'mutation { pauseSchedule(id: "x") { paused nextRuns } }'
    answer = gql(client, query, headers=AUTH).json()
    assert answer == {"data": {"pauseSchedule": {"paused": True, "nextRuns": []}}}
    assert _calls(fake_tasks) == ["pause_schedule"]


def test_task_schedule_is_fetched_only_for_a_task_a_schedule_started(client, fake_tasks):
    answer = gql(client, 'query { task(id: "t") { id schedule { id name } } }', headers=AUTH)
    assert answer.json()["data"]["task"]["schedule"] == {"id": SCHEDULE_ID, "name": "nightly"}
    assert _calls(fake_tasks) == ["get_task", "get_schedule"]
    fake_tasks.calls.clear()
    listed = gql(client, "{ tasks { edges { node { schedule { id } } } } }", headers=AUTH)
    assert listed.json()["data"]["tasks"]["edges"] == [{"node": {"schedule": None}}]
    assert _calls(fake_tasks) == ["list_tasks"]
