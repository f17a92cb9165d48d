"""Start and finish are driven by events: a task runs while every poll of the engine is far away.

The engine processes here poll for RUNNING tasks, look at containers and reconcile only every
few minutes, and one slot is all there is. Tasks still start as soon as a slot frees
(LISTEN/NOTIFY) and finish as soon as their container dies (the engine's event stream), so
they end long before any poll could have seen them. Own database and namespace: the package's
engine must not lead for these tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from services.tasks.tests.engine.conftest import (
    EngineProcesses,
    engine_env,
    own_environment,
    running_engine,
)
from services.tasks.tests.engine.test_execution import logs_of, submit, task_of, wait_status
from shared import testing

#: Every poll's period: far longer than the waits below, so only events can meet them.
POLL_SECONDS = "600"
#: How long a task may take to finish here: well under any poll's period.
WITHIN_SECONDS = 30
EVENT_DRIVEN_ENV = {
    "TASKS_WORKER_CONCURRENCY": "1",
    "TASKS_LOG_FLUSH_SECONDS": POLL_SECONDS,
    "TASKS_USAGE_SAMPLE_SECONDS": POLL_SECONDS,
    "TASKS_RECONCILE_SECONDS": POLL_SECONDS,
    "TASKS_REDISPATCH_AFTER_SECONDS": POLL_SECONDS,
    "TASKS_SLOT_WAIT_SECONDS": POLL_SECONDS,
}


@pytest.fixture(scope="module")
def event_env() -> Iterator[testing.TestEnvironment]:
    """A database and namespace of this module's own."""
    with own_environment() as environment:
        yield environment


@pytest.fixture(scope="module")
def event_engine(event_env, auth_server, docker_client) -> Iterator[EngineProcesses]:
    """The engine processes with every poll minutes apart."""
    with running_engine(event_env, auth_server, docker_client, **EVENT_DRIVEN_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def event_client(event_env, auth_server):
    """A test client of a tasks app on this module's database."""
    app = create_app(TasksSettings(engine_env(event_env, auth_server)))
    yield app.test_client()
    app.extensions["tasks"].database.dispose()


def test_tasks_start_when_a_slot_frees_and_finish_when_their_container_dies(
    event_client, event_engine, register
):
    client, alice = event_client, register()
    first = submit(client, alice, ["sh", "-c", "sleep 1; echo first"])
    second = submit(client, alice, ["echo", "second"])
    for task, text in ((first, "first\n"), (second, "second\n")):
        done = wait_status(client, alice, task["id"], timeout=WITHIN_SECONDS)
        assert (done["status"], done["exit_code"], done["attempts"]) == ("SUCCEEDED", 0, 1)
        assert logs_of(client, alice, task["id"], "stdout")["text"] == text
    # One slot: whichever start job claimed it first, the other task started only once that one
    # had ended (the two start jobs race, so either order is right).
    runs = sorted(
        (
            datetime.fromisoformat(view["started_at"]),
            datetime.fromisoformat(view["finished_at"]),
        )
        for view in (task_of(client, alice, task["id"]) for task in (first, second))
    )
    assert runs[1][0] >= runs[0][1], runs


def test_a_cancel_reaches_the_running_container_without_waiting_for_a_pass(
    event_client, event_engine, register
):
    client, alice = event_client, register()
    task = submit(client, alice, ["sleep", "120"])
    wait_status(client, alice, task["id"], {"RUNNING"}, timeout=WITHIN_SECONDS)
    response = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    assert response.status_code == 200
    # The watcher's own look is ten minutes away: only the NOTIFY can have brought the cancel.
    done = wait_status(client, alice, task["id"], timeout=WITHIN_SECONDS)
    assert done["status"] == "CANCELLED", done
    ended = datetime.fromisoformat(done["finished_at"])
    asked = datetime.fromisoformat(done["cancel_requested_at"])
    assert (ended - asked).total_seconds() < WITHIN_SECONDS, (asked, ended)
