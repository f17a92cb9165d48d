"""`make up`'s ready process warns, and stops nothing, when no Docker engine answers."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import docker
import pytest

from shared.testing import ServerThread

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("wait_ready", REPO / "deploy" / "wait_ready.py")
wait_ready = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wait_ready)


class _FakeEngine(BaseHTTPRequestHandler):
    """Answers the two calls a Docker client makes to connect: /version and /_ping."""

    def do_GET(self) -> None:
        """A minimal Engine API: its version, and OK to a ping."""
        if self.path.endswith("/version"):
            body, kind = json.dumps({"ApiVersion": "1.41"}).encode(), "application/json"
        elif self.path.endswith("/_ping"):
            body, kind = b"OK", "text/plain"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        """Quiet: a unix socket peer has no address to log."""


@pytest.fixture
def fake_engine(tmp_path) -> Iterator[str]:
    """DOCKER_HOST of an Engine API served on a unix socket of this test."""
    path = tmp_path / "docker.sock"
    server = socketserver.ThreadingUnixStreamServer(str(path), _FakeEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def dead_socket(tmp_path) -> str:
    """DOCKER_HOST of a socket file nobody listens on (an engine that stopped)."""
    path = tmp_path / "docker.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    return f"unix://{path}"


def assert_explains_how_to_get_an_engine(warning: str) -> None:
    """The warning names the consequence and the ways out."""
    assert "ENGINE_UNREACHABLE" in warning
    assert "sudo systemctl start docker" in warning
    assert ".ci/docker-engine.sh" in warning
    assert "set DOCKER_HOST in .env" in warning


def test_a_dead_socket_gets_a_warning_naming_docker_host_and_how_to_start_an_engine(dead_socket):
    warning = wait_ready.docker_engine_warning(dead_socket)
    assert warning.startswith(f"WARNING: no Docker engine answers at DOCKER_HOST={dead_socket}:")
    assert_explains_how_to_get_an_engine(warning)


def test_a_missing_socket_gets_the_same_warning(tmp_path):
    host = f"unix://{tmp_path}/nothing-here.sock"
    warning = wait_ready.docker_engine_warning(host)
    assert f"DOCKER_HOST={host}" in warning
    assert_explains_how_to_get_an_engine(warning)


def test_an_unset_docker_host_is_named_as_the_default_socket(monkeypatch):
    def refuse(**_kwargs):
        raise docker.errors.DockerException("Permission denied")

    monkeypatch.setattr(docker, "DockerClient", refuse)
    warning = wait_ready.docker_engine_warning("")
    assert "unix:///var/run/docker.sock (DOCKER_HOST is unset): Permission denied" in warning
    assert_explains_how_to_get_an_engine(warning)


def test_an_engine_that_answers_gets_no_warning(fake_engine):
    assert wait_ready.docker_engine_warning(fake_engine) is None


def test_the_real_engine_of_this_machine_gets_no_warning():
    host = os.environ.get("DOCKER_HOST", "")
    try:
        docker.DockerClient(base_url=host or None, version="auto", timeout=5).close()
    except docker.errors.DockerException as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no Docker engine in CI (.ci/docker-engine.sh): {exc}")
        pytest.skip(f"no Docker engine here: {exc}")
    assert wait_ready.docker_engine_warning(host) is None


@pytest.fixture
def service(monkeypatch) -> Iterator[str]:
    """The health URL of a process that is up."""

    def healthy(_environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    # main() would make SIGTERM exit this test process too.
    monkeypatch.setattr(wait_ready.signal, "signal", lambda *_args: None)
    with ServerThread(healthy) as server:
        yield f"{server.url}/healthz"


def test_the_ready_process_announces_dockyard_then_warns_and_keeps_its_status(
    service, dead_socket, monkeypatch, capsys
):
    monkeypatch.setenv("DOCKER_HOST", dead_socket)
    status = wait_ready.main(
        [
            "--exit",
            "--docker",
            "--deadline",
            "5",
            "--announce",
            "http://x/graphql",
            f"svc={service}",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("Dockyard is up: http://x/graphql\nWARNING: no Docker engine answers")
    assert f"DOCKER_HOST={dead_socket}" in out


def test_the_ready_process_says_nothing_more_when_the_engine_answers(
    service, fake_engine, monkeypatch, capsys
):
    monkeypatch.setenv("DOCKER_HOST", fake_engine)
    status = wait_ready.main(["--exit", "--docker", "--deadline", "5", f"svc={service}"])
    assert status == 0
    assert capsys.readouterr().out == "ready: svc\n"


def test_the_procfile_ready_process_checks_the_engine():
    ready = next(
        line for line in (REPO / "Procfile").read_text().splitlines() if line.startswith("ready:")
    )
    assert "deploy/wait_ready.py --exit --docker" in ready
