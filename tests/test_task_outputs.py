"""Task outputs end to end: files a task leaves under /output become files of its owner.

Real processes: tasks' relay, consumer, launcher, Celery worker, monitor and saga sweep (with
containers on the Docker engine); files' relay, consumer and Celery worker; the tasks and files
REST services; a gateway under uvicorn. The task_outputs saga must end SUCCEEDED with every
output stored once, and no host directory left, also when a participant is killed mid-saga.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from services.files.erasure import erase_user_files
from services.tasks.app import create_app as create_tasks_app
from services.tasks.config import TasksSettings
from services.tasks.erasure import erase_user_tasks
from services.tasks.output_saga import output_settings
from services.tasks.sagas import tasks_sagas
from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixture
    TEST_IMAGE,
    docker_client,
    running_engine,
    wait_for,
)
from shared.processes import ManagedProcess
from shared.service_identity import HEADER, ServiceCredentials
from shared.testing import ServerThread
from tests.conftest import BIN, REPO, FilesBackend, gateway_env, jwks_url, relay, uvicorn_gateway
from tests.gateway_clients import Account, Gateway

CREATE = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id status } }"
TASK = """
query ($id: ID!) {
  task(id: $id) {
    status errorCode error outputsNote
    outputFiles { id filename outputPath size lineCount status producedBy { id status } }
  }
}
"""
FILE = "query ($id: ID!) { file(id: $id) { id producedBy { id } } }"
DELETE_TASK = "mutation ($id: ID!) { deleteTask(id: $id) }"

MAX_FILES = 3
MAX_BYTES = 4096
#: Small limits and a short step timeout (so a silent participant is asked again within the
#: test), with many attempts (so the saga does not fail while it is away).
OUTPUT_SETTINGS = {
    "TASKS_OUTPUT_MAX_FILES": str(MAX_FILES),
    "TASKS_OUTPUT_MAX_BYTES": str(MAX_BYTES),
    "TASKS_OUTPUT_STEP_TIMEOUT_SECONDS": "3",
    "TASKS_OUTPUT_STEP_ATTEMPTS": "60",
}


def _process(name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
    return ManagedProcess(name, argv, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> Iterator[Path]:
    """The host directory of every attempt's /output, set for this process and the others."""
    directory = tmp_path_factory.mktemp("task-outputs")
    settings = {**OUTPUT_SETTINGS, "TASKS_OUTPUT_DIR": str(directory)}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    output_settings.cache_clear()
    tasks_sagas.cache_clear()
    yield directory
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    output_settings.cache_clear()
    tasks_sagas.cache_clear()


@pytest.fixture(scope="module")
def outputs_tasks_app(auth_server, output_dir):
    """A tasks service's app reading this module's output directory."""
    return create_tasks_app(TasksSettings(JWKS_URL=jwks_url(auth_server.url)))


class PullGate:
    """Holds the tasks service's answer to one output's pull until released (WSGI middleware).

    Lets a test kill the files worker while it waits for that output: mid-pull, for certain.
    """

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.path: str | None = None
        self.arrived = threading.Event()
        self.released = threading.Event()

    def arm(self, path: str) -> None:
        """Hold the next pulls of any output whose path is `path`."""
        self.arrived.clear()
        self.released.clear()
        self.path = path

    def release(self) -> None:
        """Answer the held pulls and those to come."""
        self.path = None
        self.released.set()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.path is not None and path.endswith(f"/outputs/{self.path}"):
            self.arrived.set()
            self.released.wait(60)
        return self.wsgi_app(environ, start_response)


@pytest.fixture(scope="module")
def pull_gate(outputs_tasks_app) -> PullGate:
    """The gate in front of this module's tasks service."""
    gate = PullGate(outputs_tasks_app.wsgi_app)
    outputs_tasks_app.wsgi_app = gate
    return gate


@pytest.fixture(scope="module")
def outputs_tasks_server(outputs_tasks_app, pull_gate) -> Iterator[ServerThread]:
    """That app on a loopback port."""
    with ServerThread(outputs_tasks_app) as server:
        yield server


@pytest.fixture(scope="module")
def files_backend(files_app, files_server) -> FilesBackend:
    """The session's files service on its local directory."""
    return FilesBackend("local", files_app, files_server.url)


def _files_worker_argv() -> list[str]:
    return [
        str(BIN / "celery"), "-A", "services.files.worker:celery_app", "worker",
        "--concurrency", "2", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--hostname", f"outputs-{os.getpid()}@%h", "-l", "INFO",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def processes(
    test_env,
    auth_server,
    files_backend,
    outputs_tasks_server,
    output_dir,
    docker_client,  # noqa: F811
):
    """Every process the saga needs, by name (the killable ones are handed out)."""
    extra = {**OUTPUT_SETTINGS, "TASKS_OUTPUT_DIR": str(output_dir)}
    env = {**os.environ, **test_env.env(), **extra}
    files_env = {
        **env,
        **files_backend.storage_env(),
        "TASKS_SERVICE_URL": outputs_tasks_server.url,
    }
    dockyard = str(BIN / "dockyard")
    files_consumer = _process("files consumer", [dockyard, "consume", "files"], files_env)
    files_worker = _process("files worker", _files_worker_argv(), files_env)
    sweep = _process("tasks sagas sweep", [dockyard, "sagas", "sweep", "tasks"], env)
    with (
        relay("files"),
        running_engine(test_env, auth_server, docker_client, **extra) as engine,
        files_consumer,
        files_worker,
        sweep,
    ):
        files_consumer.wait_ready(log_line="consumer started")
        wait_for(lambda: "ready." in files_worker.logs(), timeout=60, message="files worker")
        yield {
            "files consumer": files_consumer,
            "files worker": files_worker,
            "tasks consumer": engine["consume"],
        }


@pytest.fixture(scope="module")
def gateway(auth_server, outputs_tasks_server, files_backend, processes) -> Iterator[Gateway]:
    """A gateway under uvicorn in front of this module's services."""
    env = gateway_env(
        auth_server.url, tasks_url=outputs_tasks_server.url, files_url=files_backend.url
    )
    with uvicorn_gateway(env) as url:
        yield Gateway(url)


@pytest.fixture(scope="module")
def database(test_env):
    """A superuser's view of the run's database, to see what every schema holds."""
    engine = create_engine(test_env.service_url("tasks").replace("dockyard_tasks@", "postgres@"))
    yield engine
    engine.dispose()


@pytest.fixture
def user(gateway) -> Account:
    """A fresh user."""
    return gateway.sign_up()


def _run(gateway: Gateway, user: Account, script: str, *, wait: bool = True) -> str:
    created = gateway(
        CREATE,
        {
            "input": {
                "image": TEST_IMAGE,
                "command": ["sh", "-c", script],
                "name": "outputs",
                "maxRetries": 0,
            }
        },
        token=user.token,
    )
    assert "errors" not in created, created
    task_id = created["data"]["createTask"]["id"]
    if wait:
        _ended(gateway, user, task_id)
    return task_id


def _task(gateway: Gateway, user: Account, task_id: str) -> dict:
    body = gateway(TASK, {"id": task_id}, token=user.token)
    assert "errors" not in body, body
    return body["data"]["task"]


def _ended(gateway: Gateway, user: Account, task_id: str) -> dict:
    return wait_for(
        lambda: (
            (task := _task(gateway, user, task_id))["status"]
            not in ("PENDING", "QUEUED", "RUNNING")
            and task
        ),
        timeout=90,
        message=f"task {task_id} did not end",
    )


def _saga(database, task_id: str):
    with database.connect() as conn:
        return conn.execute(
            text("SELECT state, step, reason FROM tasks.sagas WHERE subject = :t"), {"t": task_id}
        ).one_or_none()


def _saga_ended(database, task_id: str, timeout: float = 90) -> tuple:
    return wait_for(
        lambda: (
            (saga := _saga(database, task_id)) is not None
            and saga[0] in ("SUCCEEDED", "FAILED")
            and saga
        ),
        timeout=timeout,
        message=f"the saga did not end: {_saga(database, task_id)}",
    )


def _output_rows(database, task_id: str) -> list[tuple[str, str]]:
    with database.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT output_path, owner_id::text FROM files.files"
                    " WHERE produced_by_task_id = :t ORDER BY output_path"
                ),
                {"t": task_id},
            )
        ]


def _processed_outputs(gateway: Gateway, user: Account, task_id: str, count: int) -> list[dict]:
    return wait_for(
        lambda: (
            len(files := _task(gateway, user, task_id)["outputFiles"]) == count
            and all(file["status"] == "PROCESSED" for file in files)
            and files
        ),
        timeout=90,
        message=f"outputs not processed: {_task(gateway, user, task_id)}",
    )


def _no_directory_left(output_dir: Path, task_id: str) -> None:
    wait_for(
        lambda: not (output_dir / task_id).exists(),
        timeout=30,
        message=f"the host directory of {task_id} is still there",
    )


TWO_FILES = (
    "mkdir -p /output/reports && printf 'one\\ntwo\\n' > /output/summary.txt"
    " && printf 'a\\nb\\nc\\n' > /output/reports/detail.csv"
)


def test_a_tasks_outputs_become_files_of_its_owner(gateway, user, database, output_dir):
    task_id = _run(gateway, user, TWO_FILES)
    assert _task(gateway, user, task_id)["status"] == "SUCCEEDED"
    assert _saga_ended(database, task_id)[0] == "SUCCEEDED"

    files = _processed_outputs(gateway, user, task_id, 2)
    assert [(f["outputPath"], f["filename"], f["size"], f["lineCount"]) for f in files] == [
        ("reports/detail.csv", "detail.csv", 6, 3),
        ("summary.txt", "summary.txt", 8, 2),
    ]
    for file in files:
        assert file["producedBy"] == {"id": task_id, "status": "SUCCEEDED"}
        looked_up = gateway(FILE, {"id": file["id"]}, token=user.token)["data"]["file"]
        assert looked_up["producedBy"] == {"id": task_id}
    assert _task(gateway, user, task_id)["outputsNote"] is None
    _no_directory_left(output_dir, task_id)


def test_outputs_are_the_owners_only(gateway, user, database):
    task_id = _run(gateway, user, TWO_FILES)
    files = _processed_outputs(gateway, user, task_id, 2)
    assert _saga_ended(database, task_id)[0] == "SUCCEEDED"
    stranger = gateway.sign_up()
    assert gateway(TASK, {"id": task_id}, token=stranger.token)["data"]["task"] is None
    assert gateway(FILE, {"id": files[0]["id"]}, token=stranger.token)["data"]["file"] is None
    # The task deleted: its files stay the owner's, and say no task produced them any more.
    assert gateway(DELETE_TASK, {"id": task_id}, token=user.token)["data"]["deleteTask"] is True
    looked_up = gateway(FILE, {"id": files[0]["id"]}, token=user.token)["data"]["file"]
    assert looked_up == {"id": files[0]["id"], "producedBy": None}


def test_a_task_without_outputs_starts_no_saga_and_leaves_no_directory(
    gateway, user, database, output_dir
):
    task_id = _run(gateway, user, "echo nothing to keep")
    assert _task(gateway, user, task_id)["outputFiles"] == []
    assert _saga(database, task_id) is None
    _no_directory_left(output_dir, task_id)


def test_no_more_files_than_the_limit_are_stored_and_the_task_says_which_were_not(
    gateway, user, database, output_dir
):
    script = "for n in 1 2 3 4 5; do echo $n > /output/file$n.txt; done"
    task_id = _run(gateway, user, script)
    assert _saga_ended(database, task_id)[0] == "SUCCEEDED"
    files = _processed_outputs(gateway, user, task_id, MAX_FILES)
    assert [file["outputPath"] for file in files] == ["file1.txt", "file2.txt", "file3.txt"]
    note = _task(gateway, user, task_id)["outputsNote"]
    assert "file4.txt: over TASKS_OUTPUT_MAX_FILES (3)" in note
    assert "file5.txt: over TASKS_OUTPUT_MAX_FILES (3)" in note
    _no_directory_left(output_dir, task_id)


def test_no_more_bytes_than_the_limit_are_stored(gateway, user, database, output_dir):
    script = (
        "head -c 3000 /dev/zero > /output/a.bin && head -c 3000 /dev/zero > /output/b.bin"
        " && echo small > /output/c.txt"
    )
    task_id = _run(gateway, user, script)
    assert _saga_ended(database, task_id)[0] == "SUCCEEDED"
    files = _processed_outputs(gateway, user, task_id, 2)
    assert [(f["outputPath"], f["size"]) for f in files] == [("a.bin", 3000), ("c.txt", 6)]
    note = _task(gateway, user, task_id)["outputsNote"]
    assert f"b.bin: over TASKS_OUTPUT_MAX_BYTES ({MAX_BYTES})" in note
    _no_directory_left(output_dir, task_id)


def test_a_running_task_over_its_output_limit_is_killed(gateway, user, database, output_dir):
    script = "head -c 8000 /dev/zero > /output/big.bin; sleep 120"
    task_id = _run(gateway, user, script, wait=False)
    task = _ended(gateway, user, task_id)
    assert (task["status"], task["errorCode"]) == ("FAILED", "OUTPUT_LIMIT_EXCEEDED")
    assert "TASKS_OUTPUT_MAX_BYTES" in task["error"]
    # Nothing within the limits was left: nothing stored, and the directory is gone.
    assert _task(gateway, user, task_id)["outputFiles"] == []
    assert "big.bin: over TASKS_OUTPUT_MAX_BYTES" in _task(gateway, user, task_id)["outputsNote"]
    _no_directory_left(output_dir, task_id)


def test_a_link_to_a_file_outside_is_not_followed(gateway, user, database, output_dir):
    script = (
        "ln -s /etc/passwd /output/passwd && ln -s / /output/root"
        " && mkfifo /output/pipe && echo mine > /output/real.txt"
    )
    task_id = _run(gateway, user, script)
    assert _saga_ended(database, task_id)[0] == "SUCCEEDED"
    files = _processed_outputs(gateway, user, task_id, 1)
    assert [file["outputPath"] for file in files] == ["real.txt"]
    note = _task(gateway, user, task_id)["outputsNote"]
    assert "passwd: a symbolic link (never followed)" in note
    assert "root: a symbolic link (never followed)" in note
    assert "pipe: not a regular file" in note
    _no_directory_left(output_dir, task_id)


def test_the_internal_endpoint_wants_a_service_credential_and_follows_no_link(
    outputs_tasks_server, gateway, user, database, output_dir
):
    task_id = _run(gateway, user, "echo done")
    # A finished task's directory as a malicious task could have left it.
    attempt = output_dir / task_id / "1"
    (attempt / "sub").mkdir(parents=True)
    (attempt / "sub" / "ok.txt").write_text("fine\n")
    (attempt / "escape").symlink_to("/etc/passwd")
    (attempt / "up").symlink_to(attempt / "sub")
    url = f"{outputs_tasks_server.url}/internal/v1/tasks/{task_id}/outputs"
    secret = TasksSettings().FILES_TO_TASKS_SECRET
    token = ServiceCredentials({"tasks": secret}, caller="files").token_for("tasks", None)
    try:
        refused = requests.get(f"{url}/sub/ok.txt", timeout=10)
        assert refused.status_code == 401
        assert refused.json()["code"] == "SERVICE_CREDENTIAL_REQUIRED"
        served = requests.get(f"{url}/sub/ok.txt", headers={HEADER: token}, timeout=10)
        assert (served.status_code, served.content) == (200, b"fine\n")
        for path in ("escape", "up/ok.txt", "sub", "missing"):
            answer = requests.get(f"{url}/{path}", headers={HEADER: token}, timeout=10)
            assert answer.status_code == 404, (path, answer.text)
    finally:
        shutil.rmtree(output_dir / task_id, ignore_errors=True)


@pytest.mark.parametrize("participant", ["files consumer", "files worker", "tasks consumer"])
def test_a_participant_killed_mid_saga_neither_loses_nor_duplicates_an_output(
    participant, gateway, user, database, processes, output_dir, pull_gate
):
    process = processes[participant]
    script = "; ".join(f"head -c 1000 /dev/urandom > /output/out{n}.bin" for n in range(3))
    if participant == "files worker":
        # Killed while it waits for the second output: the first is stored, the third not yet.
        pull_gate.arm("out1.bin")
        try:
            task_id = _run(gateway, user, script, wait=False)
            assert pull_gate.arrived.wait(90), "the worker never pulled out1.bin"
            assert [path for path, _ in _output_rows(database, task_id)] == ["out0.bin"]
            process.kill()
        finally:
            pull_gate.release()
    else:
        process.kill()
        task_id = _run(gateway, user, script)
        # Away past a step timeout: the sweep asks files again meanwhile.
        deadline = time.monotonic() + 30
        while "timed out" not in _history_whats(database, task_id):
            assert time.monotonic() < deadline, _saga(database, task_id)
            time.sleep(0.5)
    try:
        assert _saga(database, task_id)[0] == "RUNNING"
    finally:
        process.start()
        if participant == "files worker":
            wait_for(lambda: "ready." in process.logs(), timeout=60, message="files worker")
    assert _saga_ended(database, task_id)[0] == "SUCCEEDED"
    rows = _output_rows(database, task_id)
    assert [path for path, _owner in rows] == ["out0.bin", "out1.bin", "out2.bin"]
    assert {owner for _path, owner in rows} == {user.id}
    _processed_outputs(gateway, user, task_id, 3)
    _no_directory_left(output_dir, task_id)


def _history_whats(database, task_id: str) -> list[str]:
    with database.connect() as conn:
        history = conn.scalar(
            text("SELECT history FROM tasks.sagas WHERE subject = :t"), {"t": task_id}
        )
    return [entry["what"] for entry in history or []]


def test_outputs_of_an_owner_being_deleted_are_refused_and_nothing_is_left(
    gateway, user, database, output_dir, files_backend, outputs_tasks_app
):
    # What files does on auth.AccountDeletionRequested: the owner's replica is marked deleted.
    files = files_backend.app.extensions["files"]
    with Session(files.engine) as session, session.begin():
        erase_user_files(session, storage=files.storage, user_id=user.id, saga_id=str(uuid4()))
    # (Not through Task.outputFiles: files refuses a deleted account's token.)
    task_id = _run(gateway, user, TWO_FILES, wait=False)

    state, _step, reason = _saga_ended(database, task_id)
    assert (state, reason) == ("FAILED", "the task's owner is deleted")
    assert _output_rows(database, task_id) == []
    _no_directory_left(output_dir, task_id)
    with database.connect() as conn:
        note = conn.scalar(
            text("SELECT outputs_note FROM tasks.tasks WHERE id = :t"), {"t": task_id}
        )
    assert note == "Outputs were not stored: the task's owner is deleted"

    # Then tasks erases the account's tasks, and with them any output directory left.
    leftover = output_dir / task_id / "1"
    leftover.mkdir(parents=True)
    (leftover / "late.txt").write_text("late\n")
    tasks = outputs_tasks_app.extensions["tasks"]
    with Session(tasks.database) as session, session.begin():
        erase_user_tasks(session, user_id=user.id, saga_id=str(uuid4()))
    assert not (output_dir / task_id).exists()
