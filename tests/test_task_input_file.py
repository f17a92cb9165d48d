"""A task's input file end to end: the gateway, files and tasks, and every process behind them.

Real processes: files' relay, consumer, Celery worker and beat; tasks' relay, consumer,
launcher, Celery worker, monitor and saga sweep (containers on the Docker engine); a gateway
under uvicorn. A user uploads a text file and runs a task on it; the task reads it read-only at
/input. Refusals end the task FAILED with the reason, a leased file cannot be deleted, a lease
whose task vanished expires, and a participant killed (SIGKILL) at each step of the saga and
restarted still leads to a final state with no live lease, input directory or container left.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from services.files import leases
from services.tasks.containers import LABEL_TASK, namespace_filter
from services.tasks.sagas import tasks_sagas
from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixture
    TEST_IMAGE,
    docker_client,
    running_engine,
    wait_for,
)
from shared.processes import ManagedProcess
from tests.conftest import BIN, REPO, FilesBackend, gateway_env, relay, uvicorn_gateway
from tests.gateway_clients import GET_FILE, Account, Gateway, upload

CREATE = (
    "mutation ($input: CreateTaskInput!) "
    "{ createTask(input: $input) { id status inputFile { id } } }"
)
TASK = (
    "query ($id: ID!) { task(id: $id) { status error errorCode logs inputFile { id filename } } }"
)
CANCEL = "mutation ($id: ID!) { cancelTask(id: $id) { status } }"
DELETE_FILE = "mutation ($id: ID!) { deleteFile(id: $id) }"
ENDED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "SKIPPED"}
#: Reads the input, then tries to change it: the mount must be read-only.
READ_AND_TRY_TO_WRITE = (
    'wc -l "$DOCKYARD_INPUT_FILE"; cat /input/lines.txt; '
    "if echo x >> /input/lines.txt 2>/dev/null; then echo INPUT-WRITABLE; "
    "else echo input-read-only; fi; "
    "if touch /input/new 2>/dev/null; then echo INPUT-DIR-WRITABLE; else echo dir-read-only; fi"
)
CONTENT = b"alpha\nbeta\ngamma\n"

#: Short saga steps, so that a silent participant is asked again within seconds (the sweep's
#: work) and many attempts, so that the saga waits for a participant that is down.
SHORT_STEPS = {
    "TASKS_INPUT_FILE_STEP_TIMEOUT_SECONDS": "2",
    "TASKS_INPUT_FILE_STEP_ATTEMPTS": "60",
}


def _process(name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
    return ManagedProcess(name, argv, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def short_steps() -> Iterator[None]:
    """The session's tasks service (in this process) starts its sagas with SHORT_STEPS too."""
    saved = {name: os.environ.get(name) for name in SHORT_STEPS}
    os.environ.update(SHORT_STEPS)
    tasks_sagas.cache_clear()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tasks_sagas.cache_clear()


@pytest.fixture(scope="module")
def files_backend(files_app, files_server) -> FilesBackend:
    """The session's files service on its local directory."""
    return FilesBackend("local", files_app, files_server.url)


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory) -> Path:
    """TASKS_INPUT_DIR of this module's launcher, worker and monitor."""
    return tmp_path_factory.mktemp("task-inputs")


@pytest.fixture(scope="module")
def saga_processes(
    test_env,
    auth_server,
    files_backend,
    docker_client,  # noqa: F811
    short_steps,
    input_dir,
    tmp_path_factory,
):
    """Every process the saga needs, by name, for the crash tests to kill and restart."""
    env = {**os.environ, **test_env.env(), **SHORT_STEPS}
    files_env = {
        **env,
        **files_backend.storage_env(),
        "FILES_REAPER_INTERVAL_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }
    dockyard, celery = str(BIN / "dockyard"), str(BIN / "celery")
    files_consumer = _process("files consumer", [dockyard, "consume", "files"], files_env)
    files_worker = _process(
        "files worker",
        [
            celery, "-A", "services.files.worker:celery_app", "worker", "--concurrency", "1",
            "--without-gossip", "--without-mingle", "--hostname", f"in-{uuid.uuid4().hex[:6]}@%h",
        ],
        files_env,
    )  # fmt: skip
    schedule = tmp_path_factory.mktemp("beat") / "schedule"
    files_beat = _process(
        "files beat",
        [celery, "-A", "services.files.worker:celery_app", "beat", "--schedule", str(schedule)],
        files_env,
    )
    sweep = _process(
        "tasks sagas sweep", [dockyard, "sagas", "sweep", "tasks", "--interval", "0.5"], env
    )
    with (
        relay("files"),
        running_engine(
            test_env,
            auth_server,
            docker_client,
            TASKS_INPUT_DIR=str(input_dir),
            FILES_SERVICE_URL=files_backend.url,
            **SHORT_STEPS,
        ) as engine,
        files_consumer,
        files_worker,
        files_beat,
        sweep,
    ):
        files_consumer.wait_ready(log_line="consumer started")
        yield {
            "files consumer": files_consumer,
            "files worker": files_worker,
            "tasks consumer": engine["consume"],
            "tasks launcher": engine["launcher"],
        }


@pytest.fixture(scope="module")
def gateway(auth_server, tasks_server, files_backend, saga_processes) -> Iterator[Gateway]:
    """A gateway under uvicorn in front of the session's services."""
    env = gateway_env(auth_server.url, tasks_url=tasks_server.url, files_url=files_backend.url)
    with uvicorn_gateway(env) as url:
        yield Gateway(url)


@pytest.fixture(scope="module")
def database(test_env):
    """A superuser's view of the run's database, to see what every schema still holds."""
    engine = create_engine(test_env.service_url("tasks").replace("dockyard_tasks@", "postgres@"))
    yield engine
    engine.dispose()


def _processed_file(gateway: Gateway, user: Account, content: bytes = CONTENT) -> str:
    file_id = upload(gateway, user, content, filename="lines.txt")["id"]
    wait_for(
        lambda: (
            gateway(GET_FILE, {"id": file_id}, token=user.token)["data"]["file"]["status"]
            == "PROCESSED"
        ),
        timeout=60,
        message="the file was never processed",
    )
    return file_id


def _create(gateway: Gateway, user: Account, file_id: str, command: str) -> str:
    body = gateway(
        CREATE,
        {
            "input": {
                "image": TEST_IMAGE,
                "command": ["sh", "-c", command],
                "inputFileId": file_id,
                "timeoutSeconds": 120,
            }
        },
        token=user.token,
    )
    assert "errors" not in body, body
    return body["data"]["createTask"]["id"]


def _task(gateway: Gateway, user: Account, task_id: str) -> dict:
    return gateway(TASK, {"id": task_id}, token=user.token)["data"]["task"]


def _ended(gateway: Gateway, user: Account, task_id: str, timeout: float = 90) -> dict:
    def ended():
        task = _task(gateway, user, task_id)
        return task if task["status"] in ENDED else None

    return wait_for(ended, timeout=timeout, message=f"task {task_id} never ended")


def _saga(database, task_id: str):
    with database.connect() as conn:
        return conn.execute(
            text("SELECT state, step, reason FROM tasks.sagas WHERE subject = :t"), {"t": task_id}
        ).one_or_none()


def _live_leases(database, task_id: str) -> int:
    with database.connect() as conn:
        return conn.scalar(
            text(
                "SELECT count(*) FROM files.input_leases"
                " WHERE task_id = :t AND released_at IS NULL AND expires_at > now()"
            ),
            {"t": task_id},
        )


def _containers(docker_client, task_id: str) -> list:  # noqa: F811
    containers = docker_client.containers.list(
        all=True, filters=namespace_filter(os.environ["DOCKYARD_NAMESPACE"])
    )
    return [c for c in containers if c.labels.get(LABEL_TASK) == task_id]


def _nothing_left(database, docker_client, input_dir: Path, task_id: str) -> None:  # noqa: F811
    """No live lease, input directory or container of the task (each released asynchronously)."""
    wait_for(
        lambda: _live_leases(database, task_id) == 0,
        timeout=30,
        message="the lease was never released",
    )
    wait_for(
        lambda: not (input_dir / task_id).exists(),
        timeout=30,
        message="the input directory was left behind",
    )
    wait_for(
        lambda: not _containers(docker_client, task_id),
        timeout=30,
        message="the container was left behind",
    )


def test_a_task_reads_its_input_file_read_only_and_nothing_is_left_once_it_ends(
    gateway,
    database,
    docker_client,  # noqa: F811
    input_dir,
):
    user = gateway.sign_up()
    file_id = _processed_file(gateway, user)
    task_id = _create(gateway, user, file_id, READ_AND_TRY_TO_WRITE)

    task = _ended(gateway, user, task_id)
    assert task["status"] == "SUCCEEDED", task
    assert "3 /input/lines.txt" in task["logs"]
    assert CONTENT.decode() in task["logs"]
    assert "input-read-only" in task["logs"] and "dir-read-only" in task["logs"]
    assert "WRITABLE" not in task["logs"]
    assert task["inputFile"] == {"id": file_id, "filename": "lines.txt"}
    assert _saga(database, task_id)[0] == "SUCCEEDED"
    _nothing_left(database, docker_client, input_dir, task_id)
    file = gateway(GET_FILE, {"id": file_id}, token=user.token)["data"]["file"]
    assert file["status"] == "PROCESSED"


def test_a_file_that_is_missing_or_someone_elses_fails_the_task_with_the_reason(gateway, database):
    user, other = gateway.sign_up(), gateway.sign_up()
    for file_id in (str(uuid.uuid4()), _processed_file(gateway, other)):
        task_id = _create(gateway, user, file_id, "cat /input/*")
        task = _ended(gateway, user, task_id)
        assert (task["status"], task["errorCode"]) == ("FAILED", "INPUT_FILE_UNAVAILABLE")
        assert "file not found" in task["error"]
        assert task["inputFile"] is None
        assert _saga(database, task_id) == ("FAILED", "lease", "file not found")
        assert _live_leases(database, task_id) == 0


def test_a_file_not_processed_yet_fails_the_task_with_its_status(gateway, database, saga_processes):
    user = gateway.sign_up()
    worker = saga_processes["files worker"]
    worker.kill()  # the upload stays UPLOADED
    try:
        file_id = upload(gateway, user, CONTENT, filename="lines.txt")["id"]
        task_id = _create(gateway, user, file_id, "cat /input/*")
        task = _ended(gateway, user, task_id)
    finally:
        worker.start()
    assert (task["status"], task["errorCode"]) == ("FAILED", "INPUT_FILE_UNAVAILABLE")
    assert "file is UPLOADED, not PROCESSED" in task["error"]
    assert _saga(database, task_id) == ("FAILED", "lease", "file is UPLOADED, not PROCESSED")


def test_a_leased_file_cannot_be_deleted_until_its_task_has_ended(
    gateway,
    database,
    docker_client,  # noqa: F811
    input_dir,
):
    user = gateway.sign_up()
    file_id = _processed_file(gateway, user)
    task_id = _create(gateway, user, file_id, "sleep 300")
    wait_for(
        lambda: _task(gateway, user, task_id)["status"] == "RUNNING",
        timeout=60,
        message="the task never ran",
    )
    refused = gateway(DELETE_FILE, {"id": file_id}, token=user.token)
    (error,) = refused["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    assert task_id in error["message"]

    assert gateway(CANCEL, {"id": task_id}, token=user.token)["data"]["cancelTask"]
    assert _ended(gateway, user, task_id)["status"] == "CANCELLED"
    wait_for(
        lambda: "errors" not in gateway(DELETE_FILE, {"id": file_id}, token=user.token),
        timeout=30,
        message="the file stayed undeletable after its task ended",
    )
    assert gateway(GET_FILE, {"id": file_id}, token=user.token)["data"]["file"] is None
    _nothing_left(database, docker_client, input_dir, task_id)


def test_a_lease_whose_task_vanished_expires_and_the_file_can_then_be_deleted(
    gateway, database, files_app
):
    user = gateway.sign_up()
    file_id = _processed_file(gateway, user)
    vanished = str(uuid.uuid4())
    # A lease for a task that files will never hear of again (its rows lost, say).
    with Session(files_app.extensions["files"].engine) as session, session.begin():
        assert leases.lease_input_file(
            session,
            saga_id=str(uuid.uuid4()),
            task_id=vanished,
            owner_id=user.id,
            file_id=file_id,
            lease_seconds=2,
        )
    assert gateway(DELETE_FILE, {"id": file_id}, token=user.token)["errors"]
    # The files beat sweeps every second here.
    wait_for(
        lambda: not _count_leases(database, vanished),
        timeout=30,
        message="the lease never expired",
    )
    assert gateway(DELETE_FILE, {"id": file_id}, token=user.token) == {"data": {"deleteFile": True}}


def _count_leases(database, task_id: str) -> int:
    with database.connect() as conn:
        return conn.scalar(
            text("SELECT count(*) FROM files.input_leases WHERE task_id = :t"), {"t": task_id}
        )


def _history(database, task_id: str) -> list[str]:
    with database.connect() as conn:
        history = conn.scalar(
            text("SELECT history FROM tasks.sagas WHERE subject = :t"), {"t": task_id}
        )
    return [entry["what"] for entry in history or []]


@pytest.mark.parametrize(
    "participant",
    [
        # Down while the lease is asked for: the request waits in its queue, the sweep re-asks.
        "files consumer",
        # Down while files' reply is on its way: the replies wait, the first one advances.
        "tasks consumer",
        # Down while TaskInputReady waits to be started (the reconciler may start it too).
        "tasks launcher",
    ],
)
def test_a_participant_killed_mid_saga_still_leads_to_a_final_state_and_nothing_left(
    participant,
    gateway,
    database,
    saga_processes,
    docker_client,  # noqa: F811
    input_dir,
):
    user = gateway.sign_up()
    file_id = _processed_file(gateway, user)
    process = saga_processes[participant]
    process.kill()
    try:
        task_id = _create(gateway, user, file_id, READ_AND_TRY_TO_WRITE)
        if participant != "tasks launcher":
            # The step times out (2 s) while the participant is away: the sweep asks again.
            wait_for(
                lambda: "timed out" in _history(database, task_id),
                timeout=30,
                message=f"the saga was never re-asked: {_history(database, task_id)}",
            )
            assert _saga(database, task_id)[:2] == ("RUNNING", "lease")
            assert _task(gateway, user, task_id)["status"] == "PENDING"
    finally:
        process.start()
    task = _ended(gateway, user, task_id)
    assert task["status"] == "SUCCEEDED", task
    assert "3 /input/lines.txt" in task["logs"]
    assert _saga(database, task_id)[0] == "SUCCEEDED"
    _nothing_left(database, docker_client, input_dir, task_id)


def test_the_files_consumer_killed_while_the_task_runs_releases_the_lease_when_back(
    gateway,
    database,
    saga_processes,
    docker_client,  # noqa: F811
    input_dir,
):
    user = gateway.sign_up()
    file_id = _processed_file(gateway, user)
    task_id = _create(gateway, user, file_id, "sleep 2; cat /input/lines.txt")
    wait_for(
        lambda: _task(gateway, user, task_id)["status"] == "RUNNING",
        timeout=60,
        message="the task never ran",
    )
    consumer = saga_processes["files consumer"]
    consumer.kill()
    try:
        assert _ended(gateway, user, task_id)["status"] == "SUCCEEDED"
        assert _live_leases(database, task_id) == 1  # nobody heard the task end yet
    finally:
        consumer.start()
    _nothing_left(database, docker_client, input_dir, task_id)
    assert gateway(DELETE_FILE, {"id": file_id}, token=user.token) == {"data": {"deleteFile": True}}
