"""Slots are shared fairly between users: one user's backlog never starves another's first task.

Two slots, and alice fills both and queues a backlog behind them; then bob submits one task.
His task arrived last, but when a slot frees it goes to the owner with the fewest running tasks
(bob, none), so it starts within the next freed slots, long before alice's backlog drains. Own
database and namespace: the package's engine must not start these tasks.
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
    wait_for,
)
from services.tasks.tests.engine.test_execution import submit, task_of, wait_status
from shared import testing

SLOTS = 2
BACKLOG = 8
FAIR_ENV = {
    "TASKS_WORKER_CONCURRENCY": str(SLOTS),
    # Every wait for a slot outlasts the test: the launcher's threads hold alice's messages.
    "TASKS_SLOT_WAIT_SECONDS": "600",
}


@pytest.fixture(scope="module")
def fair_env() -> Iterator[testing.TestEnvironment]:
    """A database and namespace of this module's own."""
    with own_environment() as environment:
        yield environment


@pytest.fixture(scope="module")
def fair_engine(fair_env, auth_server, docker_client) -> Iterator[EngineProcesses]:
    """The engine processes with two slots."""
    with running_engine(fair_env, auth_server, docker_client, **FAIR_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def fair_client(fair_env, auth_server):
    """A test client of a tasks app on this module's database."""
    app = create_app(TasksSettings(engine_env(fair_env, auth_server, **FAIR_ENV)))
    yield app.test_client()
    app.extensions["tasks"].database.dispose()


def _started(view: dict) -> datetime | None:
    return datetime.fromisoformat(view["started_at"]) if view["started_at"] else None


def test_one_users_backlog_does_not_starve_another_users_first_task(
    fair_client, fair_engine, register
):
    client, alice, bob = fair_client, register(), register()
    flood = [submit(client, alice, ["sleep", "2"]) for _ in range(SLOTS + BACKLOG)]
    # Both slots are alice's and her backlog is queued behind them before bob comes.
    wait_for(
        lambda: sum(task_of(client, alice, t["id"])["status"] == "RUNNING" for t in flood) == SLOTS,
        timeout=60,
        message="alice's first tasks never took both slots",
    )
    first = submit(client, bob, ["echo", "bob"])
    done = wait_status(client, bob, first["id"], timeout=120)
    assert done["status"] == "SUCCEEDED", done
    bob_started = _started(done)
    created = datetime.fromisoformat(first["created_at"])
    # Alice's tasks that started while bob's was waiting: one per slot at most (a slot may have
    # freed while his task was being created), never her backlog.
    overtook = [
        started
        for started in (_started(task_of(client, alice, t["id"])) for t in flood)
        if started is not None and created <= started <= bob_started
    ]
    assert len(overtook) <= SLOTS, (len(overtook), overtook, bob_started)
    for task in flood:
        assert wait_status(client, alice, task["id"], timeout=120)["status"] == "SUCCEEDED"
