"""The same task suite on both executors: `docker` (a container) and `swarm` (a replicated job).

Real processes on a database and namespace of this module's own, with TASKS_EXECUTORS naming
both, on the engine made a one-node swarm manager for the session (the `swarm` fixture).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from services.tasks.containers import ContainerLimits, ContainerSpec, DockerEngine
from services.tasks.swarm import SwarmEngine
from services.tasks.tests.engine.conftest import (
    TEST_IMAGE,
    EngineProcesses,
    engine_env,
    own_environment,
    remove_swarm_leftovers,
    running_engine,
    swarm_services_of,
    wait_for,
)
from services.tasks.tests.engine.test_execution import (
    containers_of,
    logs_of,
    submit,
    task_of,
    wait_status,
)
from shared import testing

EXECUTORS_ENV = {"TASKS_EXECUTORS": "docker,swarm"}


@pytest.fixture(scope="module")
def executors_env(swarm) -> Iterator[testing.TestEnvironment]:
    """A database and namespace of this module's own."""
    with own_environment() as environment:
        yield environment


@pytest.fixture(scope="module")
def executors_engine(
    executors_env, auth_server, docker_client, tmp_path_factory
) -> Iterator[EngineProcesses]:
    """The engine processes with both executors enabled."""
    outputs = tmp_path_factory.mktemp("executor-outputs")
    with running_engine(
        executors_env,
        auth_server,
        docker_client,
        **EXECUTORS_ENV,
        TASKS_OUTPUT_DIR=str(outputs),
    ) as running:
        try:
            yield running
        finally:
            remove_swarm_leftovers(docker_client, executors_env.namespace)


@pytest.fixture(scope="module")
def executors_client(executors_env, auth_server):
    """A test client of a tasks app on this module's database, both executors allowed."""
    app = create_app(TasksSettings(engine_env(executors_env, auth_server, **EXECUTORS_ENV)))
    yield app.test_client()
    app.extensions["tasks"].database.dispose()


@pytest.fixture(params=["docker", "swarm"])
def executor(request, executors_engine) -> str:
    """The executor under test."""
    return request.param


@pytest.fixture
def client(executors_client):
    """This module's tasks app (both executors allowed)."""
    return executors_client


def run(client, user, executor, command, **spec) -> dict:
    """Submit a task on `executor` and return it once it has ended."""
    task = submit(client, user, command, executor=executor, **spec)
    assert task["executor"] == executor
    return wait_status(client, user, task["id"], timeout=90)


def nothing_left(docker_client, executor: str, task_id: str) -> None:
    """The task's container (or service) is removed once its outcome is stored."""
    if executor == "swarm":
        wait_for(
            lambda: swarm_services_of(docker_client, task_id) == [],
            timeout=20,
            message="the task's swarm service outlived it",
        )
    wait_for(
        lambda: containers_of(docker_client, task_id) == [],
        timeout=20,
        message="the task's container outlived it",
    )


def test_a_task_succeeds_with_its_logs_on_either_executor(client, alice, executor, docker_client):
    done = run(client, alice, executor, ["sh", "-c", "echo to-out; echo to-err >&2"])
    assert (done["status"], done["exit_code"], done["attempts"]) == ("SUCCEEDED", 0, 1), done
    assert logs_of(client, alice, done["id"], "stdout")["text"] == "to-out\n"
    assert logs_of(client, alice, done["id"], "stderr")["text"] == "to-err\n"
    nothing_left(docker_client, executor, done["id"])


def test_a_non_zero_exit_fails_with_its_code_on_either_executor(client, alice, executor):
    done = run(client, alice, executor, ["sh", "-c", "echo bad >&2; exit 7"])
    assert (done["status"], done["exit_code"], done["error_code"]) == (
        "FAILED",
        7,
        "NON_ZERO_EXIT",
    ), done
    assert logs_of(client, alice, done["id"], "stderr")["text"] == "bad\n"


def test_the_safe_defaults_hold_on_either_executor(client, alice, executor):
    script = (
        "id -u; "
        "touch /root-write 2>/dev/null && echo ROOT-WRITABLE; "
        "echo ok > /tmp/scratch && cat /tmp/scratch; "
        "echo kept > /output/result.txt && cat /output/result.txt; "
        "grep -q '^CapEff:.*0000000000000000' /proc/self/status && echo no-caps; "
        "ip route | grep -q default && echo HAS-ROUTE; "
        "cat /sys/fs/cgroup/pids/pids.max"
    )
    done = run(client, alice, executor, ["sh", "-c", script], memory_limit_mb=64)
    assert done["status"] == "SUCCEEDED", done
    out = logs_of(client, alice, done["id"], "stdout")["text"]
    lines = out.splitlines()
    assert lines[0] != "0", out  # not root
    assert "ROOT-WRITABLE" not in out and "HAS-ROUTE" not in out, out
    assert {"ok", "kept", "no-caps"} <= set(lines), out
    assert lines[-1].isdigit(), out  # a pids limit, not "max"


def test_a_task_over_its_timeout_is_killed_on_either_executor(
    client, alice, executor, docker_client
):
    done = run(client, alice, executor, ["sleep", "60"], timeout_seconds=2)
    assert (done["status"], done["error_code"]) == ("TIMED_OUT", "TIMED_OUT"), done
    nothing_left(docker_client, executor, done["id"])


def test_cancelling_a_running_task_stops_it_on_either_executor(
    client, alice, executor, docker_client
):
    task = submit(client, alice, ["sh", "-c", "echo begun; sleep 60"], executor=executor)
    wait_status(client, alice, task["id"], {"RUNNING"}, timeout=60)
    wait_for(
        lambda: "begun" in logs_of(client, alice, task["id"])["text"],
        timeout=20,
        message="no live output before the cancel",
    )
    response = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    assert response.status_code == 200
    done = wait_status(client, alice, task["id"], timeout=20)
    assert done["status"] == "CANCELLED", done
    nothing_left(docker_client, executor, task["id"])


def test_a_task_over_its_memory_is_oom_killed_on_either_executor(client, alice, executor):
    grow = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}"
    done = run(client, alice, executor, ["sh", "-c", grow], memory_limit_mb=8)
    assert (done["status"], done["error_code"], done["exit_code"]) == (
        "FAILED",
        "OOM_KILLED",
        137,
    ), done


def test_a_monitor_killed_mid_run_is_replaced_without_losing_the_task_on_either_executor(
    client, alice, executor, executors_engine, docker_client
):
    task = submit(
        client, alice, ["sh", "-c", "echo first; sleep 3; echo second"], executor=executor
    )
    wait_status(client, alice, task["id"], {"RUNNING"}, timeout=60)
    executors_engine["monitor"].kill()
    try:
        # The task ends while no monitor watches: the next one's reconcile and watchers find it.
        wait_for(
            lambda: (
                (
                    swarm_services_of(docker_client, task["id"])
                    if executor == "swarm"
                    else containers_of(docker_client, task["id"])
                )
                and not task_of(client, alice, task["id"])["finished_at"]
            ),
            timeout=10,
            message="the task's container went with the monitor",
        )
        time.sleep(4)  # the task ends while no monitor watches it
    finally:
        executors_engine["monitor"].start()
    done = wait_status(client, alice, task["id"], timeout=60)
    assert done["status"] == "SUCCEEDED", done
    assert logs_of(client, alice, task["id"], "stdout")["text"] == "first\nsecond\n"
    nothing_left(docker_client, executor, task["id"])


def test_an_executor_the_operator_did_not_enable_is_bad_input(make_app, alice):
    client = make_app().test_client()  # TASKS_EXECUTORS left at its default: docker only
    response = client.post(
        "/v1/tasks",
        json={"image": "busybox", "command": ["true"], "executor": "swarm"},
        headers=alice.headers,
    )
    assert response.status_code == 400, response.json
    assert response.json["code"] == "BAD_USER_INPUT"
    assert response.json["fields"] == {
        "executor": "Must be one of this server's executors: docker."
    }


def test_a_swarm_jobs_live_output_ends_when_its_service_is_removed(
    swarm, executors_env, docker_client
):
    # Swarm's follow stream outlives the job and its service: a watcher's reader would hang on.
    # A namespace no monitor reconciles: this module's would remove a service no task owns.
    namespace = f"{executors_env.namespace}-direct"
    limits = ContainerLimits(
        pids_limit=64, tmpfs_size_mb=8, user="65534:65534", namespace=namespace
    )
    engine = SwarmEngine(DockerEngine(docker_host="", timeout=30, limits=limits))
    task_id = uuid.uuid4()
    spec = ContainerSpec(
        task_id=task_id,
        owner_id=uuid.uuid4(),
        attempt=1,
        name=f"dockyard-task-{task_id}-1",
        image=TEST_IMAGE,
        command=["sh", "-c", "echo one; sleep 1; echo two"],
        env={},
        cpu_limit=0.5,
        memory_limit_mb=32,
        network=False,
        executor="swarm",
    )
    engine.run(spec)
    received: list[bytes] = []
    ended = threading.Event()

    def follow() -> None:
        received.extend(engine.follow_output(spec.name, "stdout"))
        ended.set()

    try:
        threading.Thread(target=follow, daemon=True).start()
        wait_for(lambda: b"".join(received) == b"one\ntwo\n", timeout=30, message="no output")
        assert not ended.is_set()  # the job is over, its stream is not
    finally:
        engine.remove(spec.name)
    assert ended.wait(10), "the follow stream outlived the service"
    remove_swarm_leftovers(docker_client, namespace)
    engine.close()
