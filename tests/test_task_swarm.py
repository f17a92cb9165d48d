"""A task on the Swarm executor end to end, through the gateway: input file in, outputs out.

Real processes: tasks' relay, consumer, launcher, Celery worker, monitor and saga sweep with
TASKS_EXECUTORS=docker,swarm on the engine made a one-node swarm manager (the `swarm` fixture);
files' relay, consumer and Celery worker; the tasks and files REST services; a gateway under
uvicorn.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.tasks.app import create_app as create_tasks_app
from services.tasks.config import TasksSettings
from services.tasks.output_saga import output_settings
from services.tasks.sagas import tasks_sagas
from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixtures
    TEST_IMAGE,
    docker_client,
    remove_swarm_leftovers,
    running_engine,
    swarm,
    swarm_services_of,
    wait_for,
)
from shared.processes import ManagedProcess
from shared.testing import ServerThread
from tests.conftest import BIN, REPO, FilesBackend, gateway_env, jwks_url, relay, uvicorn_gateway
from tests.gateway_clients import GET_FILE, Account, Gateway, upload

CREATE = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id executor } }"
TASK = """
query ($id: ID!) {
  task(id: $id) {
    status exitCode errorCode error executor logs inputFile { id }
    outputFiles { outputPath size status }
  }
}
"""
#: Waits a moment (to be seen running), reads the input, tries to change it, leaves one output.
SCRIPT = (
    "sleep 2; "
    'wc -l < "$DOCKYARD_INPUT_FILE"; '
    "if echo x >> /input/lines.txt 2>/dev/null; then echo INPUT-WRITABLE; "
    "else echo input-read-only; fi; "
    "tr a-z A-Z < /input/lines.txt > /output/upper.txt; echo done"
)
CONTENT = b"alpha\nbeta\ngamma\n"
SETTINGS = {
    "TASKS_EXECUTORS": "docker,swarm",
    "TASKS_INPUT_FILE_STEP_TIMEOUT_SECONDS": "2",
    "TASKS_INPUT_FILE_STEP_ATTEMPTS": "60",
    "TASKS_OUTPUT_STEP_TIMEOUT_SECONDS": "3",
    "TASKS_OUTPUT_STEP_ATTEMPTS": "60",
}


@pytest.fixture(scope="module")
def settings(swarm, tmp_path_factory) -> Iterator[dict[str, str]]:  # noqa: F811
    """This module's tasks settings, set for this process (its tasks app, sagas) and the others."""
    values = {
        **SETTINGS,
        "TASKS_INPUT_DIR": str(tmp_path_factory.mktemp("swarm-inputs")),
        "TASKS_OUTPUT_DIR": str(tmp_path_factory.mktemp("swarm-outputs")),
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    output_settings.cache_clear()
    tasks_sagas.cache_clear()
    yield values
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    output_settings.cache_clear()
    tasks_sagas.cache_clear()


@pytest.fixture(scope="module")
def swarm_tasks_server(auth_server, settings) -> Iterator[ServerThread]:
    """A tasks service that lets tasks name the swarm executor, on a loopback port."""
    app = create_tasks_app(TasksSettings(JWKS_URL=jwks_url(auth_server.url)))
    with ServerThread(app) as server:
        yield server
    app.extensions["tasks"].database.dispose()


@pytest.fixture(scope="module")
def files_backend(files_app, files_server) -> FilesBackend:
    """The session's files service on its local directory."""
    return FilesBackend("local", files_app, files_server.url)


def _process(name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
    return ManagedProcess(name, argv, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def processes(
    test_env,
    auth_server,
    files_backend,
    swarm_tasks_server,
    settings,
    docker_client,  # noqa: F811
) -> Iterator[None]:
    """Every process a task with an input file and outputs needs."""
    env = {**os.environ, **test_env.env(), **settings}
    files_env = {
        **env,
        **files_backend.storage_env(),
        "TASKS_SERVICE_URL": swarm_tasks_server.url,
    }
    dockyard, celery = str(BIN / "dockyard"), str(BIN / "celery")
    files_consumer = _process("files consumer", [dockyard, "consume", "files"], files_env)
    files_worker = _process(
        "files worker",
        [
            celery, "-A", "services.files.worker:celery_app", "worker", "--concurrency", "2",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--hostname", f"swarm-{os.getpid()}@%h", "-l", "INFO",
        ],
        files_env,
    )  # fmt: skip
    sweep = _process(
        "tasks sagas sweep", [dockyard, "sagas", "sweep", "tasks", "--interval", "0.5"], env
    )
    try:
        with (
            relay("files"),
            running_engine(
                test_env,
                auth_server,
                docker_client,
                FILES_SERVICE_URL=files_backend.url,
                **settings,
            ),
            files_consumer,
            files_worker,
            sweep,
        ):
            files_consumer.wait_ready(log_line="consumer started")
            wait_for(lambda: "ready." in files_worker.logs(), timeout=60, message="files worker")
            yield
    finally:
        remove_swarm_leftovers(docker_client, test_env.namespace)


@pytest.fixture(scope="module")
def gateway(auth_server, swarm_tasks_server, files_backend, processes) -> Iterator[Gateway]:
    """A gateway under uvicorn in front of this module's services."""
    env = gateway_env(
        auth_server.url, tasks_url=swarm_tasks_server.url, files_url=files_backend.url
    )
    with uvicorn_gateway(env) as url:
        yield Gateway(url)


def _processed_file(gateway: Gateway, user: Account) -> str:
    file_id = upload(gateway, user, CONTENT, filename="lines.txt")["id"]
    wait_for(
        lambda: (
            gateway(GET_FILE, {"id": file_id}, token=user.token)["data"]["file"]["status"]
            == "PROCESSED"
        ),
        timeout=60,
        message="the file was never processed",
    )
    return file_id


def _task(gateway: Gateway, user: Account, task_id: str) -> dict:
    body = gateway(TASK, {"id": task_id}, token=user.token)
    assert "errors" not in body, body
    return body["data"]["task"]


def test_a_swarm_task_reads_its_input_and_leaves_outputs_through_the_gateway(
    gateway,
    docker_client,  # noqa: F811
    settings,
):
    user = gateway.sign_up()
    file_id = _processed_file(gateway, user)
    created = gateway(
        CREATE,
        {
            "input": {
                "image": TEST_IMAGE,
                "command": ["sh", "-c", SCRIPT],
                "inputFileId": file_id,
                "executor": "swarm",
                "timeoutSeconds": 120,
            }
        },
        token=user.token,
    )
    assert "errors" not in created, created
    task_id = created["data"]["createTask"]["id"]
    assert created["data"]["createTask"]["executor"] == "swarm"

    wait_for(
        lambda: swarm_services_of(docker_client, task_id),
        timeout=60,
        message="the task never ran as a swarm service",
    )
    task = wait_for(
        lambda: (
            (task := _task(gateway, user, task_id))["status"]
            not in ("PENDING", "QUEUED", "RUNNING")
            and task
        ),
        timeout=120,
        message=f"task {task_id} did not end",
    )
    assert (task["status"], task["exitCode"], task["executor"]) == ("SUCCEEDED", 0, "swarm"), task
    lines = task["logs"].splitlines()
    assert {"3", "input-read-only", "done"} <= set(lines), task["logs"]
    assert "INPUT-WRITABLE" not in task["logs"]
    assert task["inputFile"] == {"id": file_id}
    outputs = wait_for(
        lambda: (
            (files := _task(gateway, user, task_id)["outputFiles"])
            and all(f["status"] == "PROCESSED" for f in files)
            and files
        ),
        timeout=90,
        message="the output was not stored",
    )
    assert outputs == [{"outputPath": "upper.txt", "size": len(CONTENT), "status": "PROCESSED"}]
    wait_for(
        lambda: swarm_services_of(docker_client, task_id) == [],
        timeout=20,
        message="the task's service outlived it",
    )
    wait_for(
        lambda: not (Path(settings["TASKS_INPUT_DIR"]) / task_id).exists(),
        timeout=20,
        message="the task's input directory outlived it",
    )
