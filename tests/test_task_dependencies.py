"""Task dependencies end to end: dependsOn, triggerRule and retryOnExitCodes through the gateway.

Real processes: tasks' relay, consumer, launcher, Celery worker and monitor (containers on the
Docker engine), the tasks REST service, a gateway under uvicorn. The reconciler re-dispatches
waiting tasks after TASKS_REDISPATCH_AFTER_SECONDS (5 s here): a dependency that runs longer
shows that a task awaiting its dependencies is never started by it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixture
    TEST_IMAGE,
    Process,
    docker_client,
    engine_env,
    running_engine,
    wait_for,
)
from tests.conftest import BIN, gateway_env, uvicorn_gateway
from tests.gateway_clients import Account, Gateway

CREATE = """
mutation ($input: CreateTaskInput!) {
  createTask(input: $input) { id status triggerRule dependsOn { id } }
}
"""
TASK = """
query ($id: ID!) {
  task(id: $id) {
    id status exitCode error errorCode attempts triggerRule startedAt finishedAt
    retryOnExitCodes dependsOn { id status }
  }
}
"""
DELETE = "mutation ($id: ID!) { deleteTask(id: $id) }"
UNFINISHED = ("PENDING", "QUEUED", "RUNNING")


@pytest.fixture(scope="module")
def engine(test_env, auth_server, docker_client):  # noqa: F811
    """The engine processes, for this module."""
    with running_engine(test_env, auth_server, docker_client) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(auth_server, tasks_server, engine) -> Iterator[Gateway]:
    """A gateway under uvicorn in front of the tasks service."""
    with uvicorn_gateway(gateway_env(auth_server.url, tasks_url=tasks_server.url)) as url:
        yield Gateway(url)


@pytest.fixture
def user(gateway) -> Account:
    """A fresh user."""
    return gateway.sign_up()


def _create(gateway: Gateway, user: Account, script: str, **fields) -> dict:
    body = gateway(
        CREATE,
        {"input": {"image": TEST_IMAGE, "command": ["sh", "-c", script], **fields}},
        token=user.token,
    )
    assert "errors" not in body, body
    return body["data"]["createTask"]


def _task(gateway: Gateway, user: Account, task_id: str) -> dict:
    body = gateway(TASK, {"id": task_id}, token=user.token)
    assert "errors" not in body, body
    return body["data"]["task"]


def _ended(gateway: Gateway, user: Account, task_id: str, timeout: float = 90) -> dict:
    return wait_for(
        lambda: (task := _task(gateway, user, task_id))["status"] not in UNFINISHED and task,
        timeout=timeout,
        message=f"task {task_id} did not end",
    )


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_chain_runs_in_order_each_task_after_its_dependency_ended(gateway, user):
    # A runs past the reconciler's re-dispatch delay: B must still wait for it.
    a = _create(gateway, user, "sleep 7", name="a")
    b = _create(gateway, user, "echo b", name="b", dependsOn=[a["id"]])
    c = _create(gateway, user, "echo c", name="c", dependsOn=[b["id"]])
    assert b["status"] == "PENDING" and b["triggerRule"] == "ALL_SUCCEEDED"
    assert b["dependsOn"] == [{"id": a["id"]}]
    assert _task(gateway, user, b["id"])["startedAt"] is None
    ended = {t["id"]: _ended(gateway, user, t["id"]) for t in (a, b, c)}
    assert [ended[t["id"]]["status"] for t in (a, b, c)] == ["SUCCEEDED"] * 3
    assert [ended[t["id"]]["attempts"] for t in (a, b, c)] == [1, 1, 1]
    assert _at(ended[b["id"]]["startedAt"]) >= _at(ended[a["id"]]["finishedAt"])
    assert _at(ended[c["id"]]["startedAt"]) >= _at(ended[b["id"]]["finishedAt"])
    assert ended[c["id"]]["dependsOn"] == [{"id": b["id"], "status": "SUCCEEDED"}]


def test_a_failed_dependency_skips_its_dependants_transitively_naming_it(gateway, user):
    a = _create(gateway, user, "exit 3", name="broken", maxRetries=0)
    b = _create(gateway, user, "echo b", dependsOn=[a["id"]])
    c = _create(gateway, user, "echo c", dependsOn=[b["id"]])
    assert _ended(gateway, user, a["id"])["status"] == "FAILED"
    skipped_b = _ended(gateway, user, b["id"])
    skipped_c = _ended(gateway, user, c["id"])
    assert (skipped_b["status"], skipped_b["errorCode"]) == ("SKIPPED", "DEPENDENCY_FAILED")
    assert "'broken'" in skipped_b["error"] and "FAILED" in skipped_b["error"]
    assert skipped_c["status"] == "SKIPPED" and b["id"] in skipped_c["error"]
    assert skipped_b["attempts"] == skipped_c["attempts"] == 0


def test_all_done_runs_after_a_failure(gateway, user):
    a = _create(gateway, user, "exit 1", maxRetries=0)
    ok = _create(gateway, user, "echo ok")
    after = _create(
        gateway, user, "echo after", dependsOn=[a["id"], ok["id"]], triggerRule="ALL_DONE"
    )
    ended = _ended(gateway, user, after["id"])
    assert (ended["status"], ended["triggerRule"], ended["attempts"]) == (
        "SUCCEEDED",
        "ALL_DONE",
        1,
    )
    assert [d["status"] for d in ended["dependsOn"]] == ["FAILED", "SUCCEEDED"]


def test_a_dependency_already_ended_counts_at_once(gateway, user):
    done = _ended(gateway, user, _create(gateway, user, "true")["id"])
    failed = _ended(gateway, user, _create(gateway, user, "false", maxRetries=0)["id"])
    runs = _create(gateway, user, "echo runs", dependsOn=[done["id"]])
    skipped = _create(gateway, user, "echo never", dependsOn=[failed["id"]])
    assert skipped["status"] == "SKIPPED"
    assert _ended(gateway, user, runs["id"])["status"] == "SUCCEEDED"


@pytest.mark.parametrize("which", ["unknown", "foreign", "not an id"])
def test_a_dependency_not_among_the_callers_tasks_is_bad_user_input(gateway, user, which):
    other = gateway.sign_up()
    ids = {
        "unknown": "00000000-0000-4000-8000-000000000000",
        "foreign": _create(gateway, other, "true")["id"],
        "not an id": "nope",
    }
    body = gateway(
        CREATE,
        {"input": {"image": TEST_IMAGE, "command": ["true"], "dependsOn": [ids[which]]}},
        token=user.token,
    )
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert ids[which] in error["extensions"]["fields"]["dependsOn"]


def test_retry_on_exit_codes_retries_only_the_listed_codes(gateway, user):
    listed = _create(gateway, user, "exit 3", maxRetries=2, retryOnExitCodes=[3, 4])
    unlisted = _create(gateway, user, "exit 5", maxRetries=2, retryOnExitCodes=[3, 4])
    unset = _create(gateway, user, "exit 5", maxRetries=2)
    assert _ended(gateway, user, listed["id"])["attempts"] == 3
    ended = _ended(gateway, user, unlisted["id"])
    assert (ended["status"], ended["attempts"], ended["exitCode"]) == ("FAILED", 1, 5)
    assert ended["retryOnExitCodes"] == [3, 4]
    assert _ended(gateway, user, unset["id"])["attempts"] == 3


def test_a_task_others_wait_on_cannot_be_deleted_until_they_are_decided(gateway, user):
    # Cancelled before it runs: its dependant is then skipped, and the edge releases it.
    a = _create(gateway, user, "sleep 30")
    b = _create(gateway, user, "echo b", dependsOn=[a["id"]])
    cancel = "mutation ($id: ID!) { cancelTask(id: $id) { status } }"
    assert "errors" not in gateway(cancel, {"id": a["id"]}, token=user.token)
    _ended(gateway, user, a["id"])
    assert _ended(gateway, user, b["id"])["status"] == "SKIPPED"
    assert gateway(DELETE, {"id": a["id"]}, token=user.token)["data"]["deleteTask"] is True
    assert _task(gateway, user, b["id"])["dependsOn"] == []


def test_the_dependant_starts_once_when_a_consumer_is_killed_as_its_dependency_ends(
    gateway, user, engine, test_env, auth_server
):
    # Two consumers share the queues; one is SIGKILLed as soon as the dependency is seen ended
    # (mid-decision, or just before or after it), then started again.
    consumer = engine["consume"]
    second = Process(
        "second consumer",
        [str(BIN / "dockyard"), "consume", "tasks"],
        engine_env(test_env, auth_server),
        consumer.log_path.with_name("consume-2.log"),
    ).start()
    try:
        wait_for(lambda: "consumer started" in second.log(), timeout=30, message="2nd consumer")
        for _ in range(3):
            a = _create(gateway, user, "sleep 2")
            b = _create(gateway, user, "echo b", dependsOn=[a["id"]])
            c = _create(gateway, user, "echo c", dependsOn=[a["id"]], triggerRule="ALL_DONE")
            wait_for(
                lambda a=a: _task(gateway, user, a["id"])["status"] not in UNFINISHED,
                timeout=60,
                message="a did not end",
            )
            consumer.kill()
            consumer.start()
            for dependant in (b, c):
                ended = _ended(gateway, user, dependant["id"])
                assert (ended["status"], ended["attempts"]) == ("SUCCEEDED", 1), ended
    finally:
        second.stop()
