"""What a task can make the engine do on the host: pulls stay out of the server's network, a
pull's failure says nothing of what answered, and container logs stay within their bound.

Own database, namespace and engine processes: these run with a small log cap, and with two
loopback listeners the operator allows as registries (the engine really pulls from them).
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator

import pytest

from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from services.tasks.containers import PULL_FAILED, ContainerLimits, DockerEngine
from services.tasks.tests.engine.conftest import (
    TEST_IMAGE,
    EngineProcesses,
    engine_env,
    own_environment,
    running_engine,
    wait_for,
)
from services.tasks.tests.engine.test_execution import logs_of, submit, wait_status
from shared import testing

LOG_MAX_BYTES = 64 * 1024
#: What the engine may keep of one container's log on its disk (2 files of 8x the cap), plus
#: one JSON line of slack (json-file rotates once a file has passed its size).
ENGINE_LOG_BOUND = 2 * 8 * LOG_MAX_BYTES + 2 * 16 * 1024
SECRET_BODY = b"internal-secret-from-the-probe-listener"


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server spelling)
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(SECRET_BODY)))
        self.end_headers()
        self.wfile.write(SECRET_BODY)

    do_HEAD = do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


def _listen() -> http.server.HTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def listeners() -> Iterator[dict[str, http.server.HTTPServer]]:
    """Loopback HTTP listeners: one the operator allows as a registry, one it does not."""
    servers = {"allowed": _listen(), "forbidden": _listen()}
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


def _host(server: http.server.HTTPServer) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def safety_env() -> Iterator[testing.TestEnvironment]:
    """A database and namespace of this module's own."""
    with own_environment() as environment:
        yield environment


@pytest.fixture(scope="module")
def safety_engine(safety_env, auth_server, docker_client, listeners) -> Iterator[EngineProcesses]:
    """The engine processes with a small log cap; only the allowed listener (and the closed
    port 1) may serve images."""
    extra = {
        "TASKS_LOG_MAX_BYTES": str(LOG_MAX_BYTES),
        "TASKS_REGISTRY_PRIVATE_ALLOWLIST": f"{_host(listeners['allowed'])},127.0.0.1:1",
    }
    with running_engine(safety_env, auth_server, docker_client, **extra) as running:
        yield running


def _client(safety_env, auth_server, **overrides):
    settings = TasksSettings(
        engine_env(safety_env, auth_server, TASKS_LOG_MAX_BYTES=str(LOG_MAX_BYTES)), **overrides
    )
    return create_app(settings).test_client()


def test_a_task_naming_a_loopback_registry_never_reaches_it(
    safety_env, safety_engine, auth_server, register, listeners
):
    client, alice = _client(safety_env, auth_server), register()
    forbidden = _host(listeners["forbidden"])
    response = client.post(
        "/v1/tasks",
        json={"image": f"{forbidden}/internal/probe:latest", "command": ["true"]},
        headers=alice.headers,
    )
    assert response.status_code == 400, response.json
    assert set(response.json["fields"]) == {"image"}
    time.sleep(2)  # what a start job would have needed to pull
    assert listeners["forbidden"].requests == []


def test_the_engine_refuses_a_pull_its_own_settings_forbid(
    safety_env, safety_engine, auth_server, register, listeners
):
    # An API that let it through (older, or another setting): the engine checks again.
    forbidden = _host(listeners["forbidden"])
    client, alice = (
        _client(safety_env, auth_server, REGISTRY_PRIVATE_ALLOWLIST=[forbidden]),
        register(),
    )
    task = submit(client, alice, ["true"], image=f"{forbidden}/internal/probe:latest")
    done = wait_status(client, alice, task["id"])
    assert (done["status"], done["error_code"]) == ("FAILED", "IMAGE_REFUSED"), done
    assert listeners["forbidden"].requests == []


def test_a_failed_pull_tells_the_task_nothing_of_what_answered(
    safety_env, safety_engine, auth_server, register, listeners
):
    allowed = _host(listeners["allowed"])
    client = _client(safety_env, auth_server, REGISTRY_PRIVATE_ALLOWLIST=[allowed, "127.0.0.1:1"])
    alice = register()
    errors = []
    for host in (allowed, "127.0.0.1:1"):
        task = submit(client, alice, ["true"], image=f"{host}/internal/probe:latest")
        done = wait_status(client, alice, task["id"])
        assert (done["status"], done["error_code"]) == ("FAILED", "IMAGE_NOT_FOUND"), done
        errors.append(done["error"])
    # The engine did ask the open port (so the answer below really hid something).
    assert listeners["allowed"].requests
    assert errors == [PULL_FAILED, PULL_FAILED]
    assert "internal-secret" not in "".join(errors)
    # The detail is for the operator, in the log of the process that started the task (the
    # launcher starts new tasks; the Celery start job, those it hands over).
    assert "internal/probe" in safety_engine["launcher"].log() + safety_engine["worker"].log()


def _log_files_size(docker_client, container_id: str) -> int:
    path = docker_client.api.inspect_container(container_id)["LogPath"]
    directory, name = os.path.split(path)
    return sum(
        os.stat(os.path.join(directory, entry)).st_size
        for entry in os.listdir(directory)
        if entry.startswith(name)
    )


def test_a_chatty_task_keeps_the_engines_log_and_its_stored_log_bounded(
    safety_env, safety_engine, auth_server, register, docker_client
):
    client, alice = _client(safety_env, auth_server), register()
    # 16 MB of output, 250 times the cap, then a pause to look at the engine's log files.
    script = "yes abcdefghijklmnopqrstuvwxyz0123456789 | head -c 16000000; echo END; sleep 4"
    task = submit(client, alice, ["sh", "-c", script])
    container = wait_for(
        lambda: docker_client.containers.list(
            filters={"label": f"dockyard.task-id={task['id']}"}, ignore_removed=True
        ),
        timeout=30,
        message="the task's container never appeared",
    )[0]
    sizes = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            sizes.append(_log_files_size(docker_client, container.id))
        except (FileNotFoundError, KeyError):
            pass
        time.sleep(0.1)
    assert sizes and max(sizes) <= ENGINE_LOG_BOUND, (max(sizes), ENGINE_LOG_BOUND)
    done = wait_status(client, alice, task["id"])
    assert done["status"] == "SUCCEEDED", done
    logs = logs_of(client, alice, task["id"], "stdout")
    assert logs["truncated"] is True
    assert logs["text"].startswith("[dockyard: earlier output dropped:")
    assert len(logs["text"].encode()) <= LOG_MAX_BYTES + 200


def test_a_read_of_a_containers_output_returns_at_most_the_cap(docker_client):
    limits = ContainerLimits(pids_limit=64, tmpfs_size_mb=8, user="", log_max_bytes=LOG_MAX_BYTES)
    engine = DockerEngine(docker_host="", timeout=30, limits=limits)
    # Created without a log bound, as containers of earlier versions were: the read bounds itself.
    container = docker_client.containers.run(
        TEST_IMAGE,
        ["sh", "-c", "yes 0123456789 | head -c 3000000; yes e | head -c 300000 >&2; echo END"],
        detach=True,
    )
    try:
        container.wait(timeout=60)
        output = engine.read_output(container.name, max_bytes=LOG_MAX_BYTES)
    finally:
        container.remove(force=True)
        engine.close()
    assert output.total == {"stdout": 3000004, "stderr": 300000}
    assert len(output.data["stdout"]) == LOG_MAX_BYTES
    assert output.data["stdout"].endswith(b"789\n012END\n")
    assert len(output.data["stderr"]) == LOG_MAX_BYTES
