"""Workflows end to end: createWorkflow, workflow(s), cancelWorkflow and workflowUpdated.

Real processes: tasks' relay, consumer, launcher, Celery worker and monitor (containers on the
Docker engine), the tasks REST service, a gateway under uvicorn (its event feed included).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixture
    TEST_IMAGE,
    docker_client,
    running_engine,
    wait_for,
)
from tests.conftest import gateway_env, uvicorn_gateway
from tests.gateway_clients import Account, Gateway, Socket, session

WORKFLOW = """
  id name status failedStep createdAt finishedAt
  steps { name dependsOn task { id status error startedAt finishedAt workflow { id } } }
"""
CREATE = f"""
mutation ($input: CreateWorkflowInput!) {{ createWorkflow(input: $input) {{ {WORKFLOW} }} }}
"""
GET = f"query ($id: ID!) {{ workflow(id: $id) {{ {WORKFLOW} }} }}"
LIST = """
query ($first: Int, $after: String) {
  workflows(first: $first, after: $after) {
    edges { cursor node { id name } } pageInfo { hasNextPage endCursor } totalCount
  }
}
"""
CANCEL = f"mutation ($id: ID!) {{ cancelWorkflow(id: $id) {{ {WORKFLOW} }} }}"
UPDATED = """
subscription ($id: ID!) {
  workflowUpdated(id: $id) { status failedStep finishedAt steps { name task { status } } }
}
"""


@pytest.fixture(scope="module")
def engine(test_env, auth_server, docker_client):  # noqa: F811
    """The engine processes, for this module."""
    with running_engine(test_env, auth_server, docker_client) as running:
        yield running


@pytest.fixture(scope="module")
def served(auth_server, tasks_server, engine) -> Iterator[str]:
    """A gateway under uvicorn in front of the tasks service; its base URL."""
    with uvicorn_gateway(gateway_env(auth_server.url, tasks_url=tasks_server.url)) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(served) -> Gateway:
    """A client of the served gateway."""
    return Gateway(served)


@pytest.fixture
def user(gateway) -> Account:
    """A fresh user."""
    return gateway.sign_up()


def _step(name: str, script: str, *depends_on: str, **task) -> dict:
    return {
        "name": name,
        "task": {"image": TEST_IMAGE, "command": ["sh", "-c", script], "maxRetries": 0, **task},
        "dependsOn": list(depends_on),
    }


def _create(gateway: Gateway, user: Account, *steps: dict, name: str = "flow") -> dict:
    body = gateway(CREATE, {"input": {"name": name, "steps": list(steps)}}, token=user.token)
    assert "errors" not in body, body
    return body["data"]["createWorkflow"]


def _refused(gateway: Gateway, user: Account, *steps: dict) -> dict:
    body = gateway(CREATE, {"input": {"steps": list(steps)}}, token=user.token)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    return error


def _get(gateway: Gateway, user: Account, workflow_id: str) -> dict:
    body = gateway(GET, {"id": workflow_id}, token=user.token)
    assert "errors" not in body, body
    return body["data"]["workflow"]


def _finished(gateway: Gateway, user: Account, workflow_id: str) -> dict:
    return wait_for(
        lambda: (w := _get(gateway, user, workflow_id))["finishedAt"] is not None and w,
        timeout=120,
        message=f"workflow {workflow_id} did not finish",
    )


def _steps(workflow: dict) -> dict[str, dict]:
    return {step["name"]: step for step in workflow["steps"]}


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_diamond_runs_each_step_after_its_dependencies_and_succeeds(gateway, user):
    created = _create(
        gateway,
        user,
        _step("join", "cat /input/left/left.txt && test -d /input/right", "left", "right"),
        _step("left", "cat /input/start/greeting.txt | tee /output/left.txt", "start"),
        # Read-only: the step cannot change what its dependency left.
        _step("right", "test -r /input/start/greeting.txt && ! touch /input/start/x", "start"),
        _step("start", "mkdir -p /output/deep && echo hello > /output/greeting.txt && sleep 1"),
        name="diamond",
    )
    assert (created["name"], created["status"], created["failedStep"]) == (
        "diamond",
        "RUNNING",
        None,
    )
    assert {s["name"]: sorted(s["dependsOn"]) for s in created["steps"]} == {
        "start": [],
        "left": ["start"],
        "right": ["start"],
        "join": ["left", "right"],
    }
    assert {s["task"]["workflow"]["id"] for s in created["steps"]} == {created["id"]}
    finished = _finished(gateway, user, created["id"])
    steps = _steps(finished)
    assert finished["status"] == "SUCCEEDED" and finished["failedStep"] is None
    assert {name: step["task"]["status"] for name, step in steps.items()} == dict.fromkeys(
        steps, "SUCCEEDED"
    )
    for name, needs in {"left": ["start"], "right": ["start"], "join": ["left", "right"]}.items():
        for needed in needs:
            assert _at(steps[name]["task"]["startedAt"]) >= _at(steps[needed]["task"]["finishedAt"])
    logs = "query ($id: ID!) { task(id: $id) { logs } }"
    for name in ("left", "join"):
        read = gateway(logs, {"id": steps[name]["task"]["id"]}, token=user.token)
        assert read["data"]["task"]["logs"] == "hello\n", (name, read)
    listed = gateway(LIST, {"first": 1}, token=user.token)["data"]["workflows"]
    assert listed["totalCount"] == 1 and listed["edges"][0]["node"]["id"] == created["id"]


@pytest.mark.parametrize(
    ("steps", "says"),
    [
        ([_step("a", "true", "b"), _step("b", "true", "a")], "a → b → a"),
        ([_step("a", "true", "c"), _step("c", "true", "c")], "c → c"),
        ([_step("a", "true", "nope")], "Unknown step name 'nope'"),
        ([_step("a", "true"), _step("a", "true")], "Duplicate step name 'a'"),
        ([{**_step("a", "true"), "task": {"image": TEST_IMAGE, "command": ["true"],
                                          "dependsOn": ["x"]}}], "dependsOn"),
        ([], "at least one step"),
        ([_step("..", "true")], "Letters, digits"),
    ],
)  # fmt: skip
def test_an_invalid_dag_is_refused_naming_it_and_nothing_is_created(gateway, user, steps, says):
    error = _refused(gateway, user, *steps)
    assert says in error["message"] or says in str(error["extensions"].get("fields")), error
    listed = gateway(LIST, {}, token=user.token)["data"]["workflows"]
    assert listed["totalCount"] == 0
    tasks = gateway("{ tasks { totalCount } }", token=user.token)["data"]["tasks"]
    assert tasks["totalCount"] == 0


def test_a_failed_step_fails_the_workflow_naming_it_and_skips_its_dependants(gateway, user):
    created = _create(
        gateway,
        user,
        _step("fetch", "exit 2"),
        _step("parse", "echo parse", "fetch"),
        _step("other", "echo other"),
    )
    finished = _finished(gateway, user, created["id"])
    steps = _steps(finished)
    assert (finished["status"], finished["failedStep"]) == ("FAILED", "fetch")
    assert steps["parse"]["task"]["status"] == "SKIPPED"
    assert "FAILED" in steps["parse"]["task"]["error"]
    assert steps["other"]["task"]["status"] == "SUCCEEDED"


def test_cancel_workflow_cancels_running_and_pending_steps(gateway, user):
    created = _create(gateway, user, _step("slow", "sleep 60"), _step("after", "true", "slow"))
    wait_for(
        lambda: _steps(_get(gateway, user, created["id"]))["slow"]["task"]["status"] == "RUNNING",
        timeout=60,
        message="slow did not start",
    )
    body = gateway(CANCEL, {"id": created["id"]}, token=user.token)
    assert "errors" not in body, body
    assert body["data"]["cancelWorkflow"]["status"] == "CANCELLED"
    finished = _finished(gateway, user, created["id"])
    steps = _steps(finished)
    assert finished["status"] == "CANCELLED"
    assert steps["slow"]["task"]["status"] == "CANCELLED"
    assert steps["after"]["task"]["status"] == "CANCELLED"
    other = gateway.sign_up()
    refused = gateway(CANCEL, {"id": created["id"]}, token=other.token)
    assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert gateway(GET, {"id": created["id"]}, token=other.token)["data"]["workflow"] is None


def test_workflow_updated_sends_the_state_then_each_change_and_completes(served, gateway, user):
    created = _create(gateway, user, _step("one", "sleep 1"), _step("two", "true", "one"))

    async def scenario(socket: Socket) -> list[dict]:
        await socket.subscribe("w", UPDATED, {"id": created["id"]})
        states = [await socket.next_state("w", "workflowUpdated")]
        while states[-1]["finishedAt"] is None:
            message = await socket.receive()
            if message["type"] == "complete":
                break
            states.append(message["payload"]["data"]["workflowUpdated"])
        else:
            await socket.completed("w")
        return states

    states = session(served, user, scenario)
    assert states[0]["status"] == "RUNNING"
    assert states[-1]["status"] == "SUCCEEDED" and states[-1]["finishedAt"] is not None
    seen = [
        (state["status"], state["finishedAt"], *(step["task"]["status"] for step in state["steps"]))
        for state in states
    ]
    assert len(seen) == len(set(seen)) >= 3, seen  # one message per change, none repeated
    assert any(one == "SUCCEEDED" and two != "SUCCEEDED" for *_, one, two in seen), seen
