"""A third-party executor end to end: the example package's `labelled-docker`, enabled in
TASKS_EXECUTORS, runs a task created through the gateway on the real Docker engine.

Real processes: tasks' relay, consumer, launcher, Celery worker and monitor with
TASKS_EXECUTORS=docker,labelled-docker; the tasks REST service (the same setting); a gateway
under uvicorn. The plugin labels every container it starts: that label is the proof a task ran
through it, and its absence that a `docker` task did not.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from dockyard_example_plugins.executor import LABEL, NAME

from services.tasks.app import create_app as create_tasks_app
from services.tasks.config import TasksSettings
from services.tasks.containers import LABEL_TASK
from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixture
    TEST_IMAGE,
    docker_client,
    running_engine,
    wait_for,
)
from shared.testing import ServerThread
from tests.conftest import gateway_env, jwks_url, uvicorn_gateway
from tests.gateway_clients import Account, Gateway, codes

EXECUTORS = ["docker", NAME]
CREATE = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id executor } }"
TASK = "query ($id: ID!) { task(id: $id) { status exitCode executor logs } }"
UNFINISHED = ("PENDING", "QUEUED", "RUNNING")


@pytest.fixture(scope="module")
def plugin_tasks_server(auth_server) -> Iterator[ServerThread]:
    """A tasks service whose tasks may name the plugin executor, on a loopback port."""
    settings = TasksSettings(JWKS_URL=jwks_url(auth_server.url), EXECUTORS=EXECUTORS)
    app = create_tasks_app(settings)
    with ServerThread(app) as server:
        yield server
    app.extensions["tasks"].database.dispose()


@pytest.fixture(scope="module")
def gateway(test_env, auth_server, docker_client, plugin_tasks_server) -> Iterator[Gateway]:  # noqa: F811
    """The engine processes with the plugin enabled, and a gateway in front of the service."""
    with (
        running_engine(test_env, auth_server, docker_client, TASKS_EXECUTORS=",".join(EXECUTORS)),
        uvicorn_gateway(gateway_env(auth_server.url, tasks_url=plugin_tasks_server.url)) as url,
    ):
        yield Gateway(url)


def _create(gateway: Gateway, user: Account, script: str, **fields) -> dict:
    task_input = {"image": TEST_IMAGE, "command": ["sh", "-c", script], **fields}
    body = gateway(CREATE, {"input": task_input}, token=user.token)
    assert "errors" not in body, body
    return body["data"]["createTask"]


def _ended(gateway: Gateway, user: Account, task_id: str) -> dict:
    def ended() -> dict | None:
        body = gateway(TASK, {"id": task_id}, token=user.token)
        assert "errors" not in body, body
        task = body["data"]["task"]
        return task if task["status"] not in UNFINISHED else None

    return wait_for(ended, timeout=120, message=f"task {task_id} did not end")


def _labels_by_task(docker_client, task_ids: list[str], seen: dict) -> dict | None:  # noqa: F811
    """Record the labels of each task's container as the engine lists them; all once seen."""
    for task_id in task_ids:
        # The list call carries the labels: nothing to inspect, which a removal could race.
        found = docker_client.api.containers(all=True, filters={"label": f"{LABEL_TASK}={task_id}"})
        if found:
            seen[task_id] = found[0]["Labels"]
    return seen if len(seen) == len(task_ids) else None


def test_a_task_naming_the_plugin_executor_runs_through_it_and_a_docker_one_does_not(
    gateway,
    docker_client,  # noqa: F811
):
    user = gateway.sign_up()
    # Long enough to be seen running: the container is removed once the task's end is recorded.
    script = "sleep 8; echo ran-here"
    plugged = _create(gateway, user, script, executor=NAME)
    plain = _create(gateway, user, script, executor="docker")
    assert (plugged["executor"], plain["executor"]) == (NAME, "docker")

    seen: dict[str, dict[str, str]] = {}
    labels = wait_for(
        lambda: _labels_by_task(docker_client, [plugged["id"], plain["id"]], seen),
        timeout=90,
        message="not every task got a container (or its container was never seen)",
    )
    assert labels[plugged["id"]][LABEL] == NAME
    assert LABEL not in labels[plain["id"]]

    for task, executor in ((plugged, NAME), (plain, "docker")):
        ended = _ended(gateway, user, task["id"])
        assert (ended["status"], ended["exitCode"], ended["executor"]) == (
            "SUCCEEDED",
            0,
            executor,
        ), ended
        assert ended["logs"].splitlines() == ["ran-here"]


def test_an_installed_executor_the_operator_did_not_enable_is_bad_user_input(gateway):
    user = gateway.sign_up()
    task_input = {"image": TEST_IMAGE, "command": ["true"], "executor": "swarm"}
    body = gateway(CREATE, {"input": task_input}, token=user.token)
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["extensions"]["fields"] == {
        "executor": f"Must be one of this server's executors: docker, {NAME}."
    }
    assert body["data"] is None


def test_the_tasks_service_lists_the_plugin_executor(plugin_tasks_server):
    response = requests.get(f"{plugin_tasks_server.url}/v1/plugins", timeout=30)
    assert response.status_code == 200
    listed = {(p["kind"], p["name"]): p for p in response.json()["plugins"]}
    plugin = listed[("executor", NAME)]
    assert (plugin["distribution"], plugin["status"], plugin["error"]) == (
        "dockyard-example-plugins",
        "ok",
        None,
    )
