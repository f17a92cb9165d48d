"""dockyard.client against the real stack: a gateway under uvicorn, auth, files and tasks with
their relays, the files consumer and Celery worker, and the task engine on the Docker engine.

A user registers, logs in, refreshes, uploads a file (streamed) and follows its processing, runs
a task and follows its logs, all through the generated client; the example script does the same.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from dockyard.client import CreateTaskInput, Dockyard, DockyardError
from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixture
    TEST_IMAGE,
    docker_client,
    running_engine,
)
from shared.processes import ManagedProcess
from tests.conftest import BIN, PASSWORD, REPO, FilesBackend, gateway_env, relay, unique_email
from tests.conftest import uvicorn_gateway as served


@pytest.fixture(scope="module")
def stack(
    test_env,
    auth_server,
    tasks_server,
    files_app,
    files_server,
    docker_client,  # noqa: F811
    tmp_path_factory,
) -> Iterator[str]:
    """Every process behind the gateway; the gateway's GraphQL endpoint."""
    files = FilesBackend("local", files_app, files_server.url)
    env = {**os.environ, **test_env.env(), **files.storage_env(), "LOG_LEVEL": "INFO"}
    dockyard, celery = str(BIN / "dockyard"), str(BIN / "celery")
    consumer = ManagedProcess("files consumer", [dockyard, "consume", "files"], env=env, cwd=REPO)
    worker = ManagedProcess(
        "files worker",
        [
            celery, "-A", "services.files.worker:celery_app", "worker", "--concurrency", "1",
            "--without-gossip", "--without-mingle", "--hostname", f"cl-{uuid.uuid4().hex[:6]}@%h",
        ],
        env=env,
        cwd=REPO,
    )  # fmt: skip
    with (
        relay("files"),
        running_engine(
            test_env,
            auth_server,
            docker_client,
            TASKS_INPUT_DIR=str(tmp_path_factory.mktemp("client-inputs")),
            FILES_SERVICE_URL=files_server.url,
        ),
        consumer,
        worker,
    ):
        consumer.wait_ready(log_line="consumer started")
        gateway = gateway_env(auth_server.url, tasks_url=tasks_server.url, files_url=files.url)
        with served(gateway) as url:
            yield f"{url}/graphql"


def test_a_user_signs_up_logs_in_refreshes_and_errors_carry_their_code(stack):
    email = unique_email("client")
    with Dockyard(stack) as dockyard:
        registered = dockyard.register(f"  {email.upper()} ", PASSWORD)
        assert registered.user.email == email
        with pytest.raises(DockyardError) as conflict:
            dockyard.register(email, PASSWORD)
        assert conflict.value.code == "CONFLICT"
        with pytest.raises(DockyardError) as invalid:
            dockyard.register("not-an-email", "short")
        assert invalid.value.code == "BAD_USER_INPUT"
        assert set(invalid.value.fields) == {"email", "password"}

        logged_in = dockyard.login(email, PASSWORD)
        assert dockyard.me().id == registered.user.id
        refreshed = dockyard.refresh_token()
        assert refreshed.access_token != logged_in.access_token
        assert dockyard.me().email == email
        # A rotated refresh token is refused, and revokes its family.
        with pytest.raises(DockyardError) as reused:
            dockyard.refresh_token(logged_in.refresh_token)
        assert reused.value.code == "UNAUTHENTICATED"

    with Dockyard(stack) as anonymous, pytest.raises(DockyardError) as unauthenticated:
        anonymous.me()
    assert unauthenticated.value.code == "UNAUTHENTICATED"


class Chunks(io.RawIOBase):
    """A file object that hands out its content in small reads and counts them."""

    def __init__(self, content: bytes) -> None:
        self.content = io.BytesIO(content)
        self.reads: list[int] = []
        self.name = "lines.txt"

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.content.read(size)
        self.reads.append(len(chunk))
        return chunk


def test_an_upload_streams_is_followed_to_processed_and_a_task_s_logs_are_followed_live(stack):
    with Dockyard(stack) as dockyard:
        dockyard.register(unique_email("client"), PASSWORD)
        content = b"".join(b"line %d of the client test\n" % n for n in range(20_000))
        source = Chunks(content)
        uploaded = dockyard.upload(source, content_type="text/plain")
        assert (uploaded.filename, uploaded.size) == ("lines.txt", len(content))
        # Streamed: read a chunk at a time, never as one whole read of the content.
        assert max(source.reads) < len(content)

        states = [state.status.value for state in dockyard.file_updated(uploaded.id)]
        assert states[-1] == "PROCESSED"
        processed = dockyard.file(uploaded.id)
        assert (processed.line_count, processed.word_count) == (20_000, 20_000 * 6)

        task = dockyard.create_task(
            CreateTaskInput(
                image=TEST_IMAGE,
                command=["sh", "-c", "echo first; sleep 1; echo second"],
            )
        )
        logs = "".join(chunk.text for chunk in dockyard.task_logs(task.id))
        assert logs.split() == ["first", "second"]
        finished = dockyard.task(task.id)
        assert (finished.status.value, finished.exit_code) == ("SUCCEEDED", 0)
        assert [edge.node.id for edge in dockyard.tasks(first=5).edges] == [task.id]

        with pytest.raises(DockyardError) as missing:
            dockyard.cancel_task(str(uuid.uuid4()))
        assert missing.value.code == "NOT_FOUND"


def test_the_example_script_uploads_runs_a_task_on_the_file_and_prints_its_logs(stack, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("alpha\nbeta\ngamma\n")
    argv = [
        sys.executable, str(REPO / "examples/client/run_task.py"), "--url", stack,
        "--email", unique_email("example"), "--password", PASSWORD, "--register",
        "--image", TEST_IMAGE, str(notes),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "file PROCESSED" in done.stdout
    assert "lines: 3" in done.stdout
    assert "alpha" in done.stdout
    assert "task SUCCEEDED (exit code 0)" in done.stdout
