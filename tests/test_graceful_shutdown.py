"""Stopping and restarting the servers as deployments do loses no request.

- SIGTERM (what supervisord, `docker stop` and Kubernetes send) lets a REST service under the
  deployed gunicorn settings, and the gateway under its uvicorn servers, finish the requests
  already in flight, then exit 0: here a request whose body is still arriving when the signal
  lands.
- SIGHUP makes gunicorn replace its workers while the master keeps the listening socket, so a
  REST service is restarted (new code, new settings) while a client keeps calling, and every
  call is answered: connections made while the new worker boots wait in the socket's backlog.

The gateway runs as one process per replica; restarting one without dropping calls needs a
second replica behind the load balancer (deploy/k8s: two replicas, a readiness probe and a
preStop pause), which is the balancer's job rather than the process's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

import pytest
import requests

from shared.processes import ManagedProcess
from tests.conftest import (
    BIN,
    PASSWORD,
    REPO,
    free_port,
    gateway_env,
    gateway_process,
    unique_email,
)

#: gunicorn's graceful_timeout (deploy/gunicorn.conf.py) and a margin for a loaded machine.
DRAIN_DEADLINE = 10 + 10


@pytest.fixture
def auth_under_gunicorn(test_env):
    """The auth service as the Procfile runs it: gunicorn with deploy/gunicorn.conf.py."""
    port = free_port()
    argv = [
        BIN / "gunicorn", "--config", REPO / "deploy" / "gunicorn.conf.py", "--name",
        "dockyard-auth", "--bind", f"127.0.0.1:{port}", "services.auth.wsgi:app",
    ]  # fmt: skip
    with ManagedProcess("auth-gunicorn", argv, env=os.environ.copy(), cwd=REPO) as process:
        process.wait_ready(
            log_line=f"Listening at: http://127.0.0.1:{port}",
            until=lambda: _answers(f"http://127.0.0.1:{port}/healthz"),
            timeout=60,
        )
        yield process, port


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _slow_post(port: int, path: str, body: bytes, during: Callable[[], object]) -> tuple[int, dict]:
    """POST `body` in two parts, calling `during()` between them; (status, JSON answer)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head + body[:8])
        # Let the server take the request (headers read, the handler waiting for the body).
        time.sleep(0.5)
        during()
        time.sleep(1.0)
        connection.sendall(body[8:])
        raw = b""
        while chunk := connection.recv(65536):
            raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    _headers, _, payload = rest.partition(b"\r\n\r\n")
    if b"chunked" in _headers.lower():
        payload = _dechunk(payload)
    return int(status_line.split()[1]), json.loads(payload)


def _stop(process: ManagedProcess) -> None:
    """SIGTERM to the main process only, as `docker stop` and supervisord send it."""
    os.kill(process.process.pid, signal.SIGTERM)


def _dechunk(payload: bytes) -> bytes:
    out = b""
    while payload:
        size_line, _, payload = payload.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, payload = out + payload[:size], payload[size + 2 :]
    return out


def test_sigterm_lets_a_rest_service_answer_the_request_in_flight_then_exit(auth_under_gunicorn):
    process, port = auth_under_gunicorn
    email = unique_email("drain")
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    status, answer = _slow_post(port, "/v1/auth/register", body, during=lambda: _stop(process))
    assert status == 201, answer
    assert answer["user"]["email"] == email
    assert process.process.wait(timeout=DRAIN_DEADLINE) == 0, process.logs()[-2000:]


def test_sighup_restarts_a_rest_services_workers_while_every_call_is_answered(
    auth_under_gunicorn,
):
    process, port = auth_under_gunicorn
    url = f"http://127.0.0.1:{port}/readyz"
    answers: list[int | str] = []
    stop = threading.Event()

    def keep_calling() -> None:
        while not stop.is_set():
            try:
                # A new connection each time, as a balancer in front would open them.
                answers.append(requests.get(url, timeout=30).status_code)
            except requests.RequestException as exc:
                answers.append(type(exc).__name__)

    worker_pids = _worker_pids(process.process.pid)
    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        time.sleep(1)
        os.kill(process.process.pid, signal.SIGHUP)  # the master only, as `kill -HUP` would
        deadline = time.monotonic() + 60
        # Replaced: the old worker gone (after its calls in flight), a new one in its place.
        while (pids := _worker_pids(process.process.pid)) & worker_pids or not pids:
            assert time.monotonic() < deadline, "gunicorn never replaced its worker"
            time.sleep(0.2)
        # Calls keep flowing to the new worker for a while.
        seen = len(answers)
        while len(answers) < seen + 20:
            assert time.monotonic() < deadline, f"calls stalled after the restart: {answers[-5:]}"
            time.sleep(0.1)
    finally:
        stop.set()
        caller.join(60)
    assert answers and set(answers) == {200}, [a for a in answers if a != 200][:5]
    assert not pids & worker_pids


def _worker_pids(master: int) -> set[int]:
    """The gunicorn master's live child processes."""
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state, ppid, ...; a zombie (Z) has already exited.
        if int(fields[1]) == master and fields[0] != "Z":
            children.add(int(entry))
    return children


def test_sigterm_lets_the_gateway_answer_the_request_in_flight_then_exit(auth_server):
    with gateway_process(gateway_env(auth_server.url)) as served:
        port = int(served.url.rsplit(":", 1)[1])
        body = json.dumps({"query": "{ __typename }"}).encode()
        status, answer = _slow_post(port, "/graphql", body, during=lambda: _stop(served.process))
        assert status == 200
        assert answer == {"data": {"__typename": "Query"}}
        assert served.process.process.wait(timeout=DRAIN_DEADLINE) == 0, served.process.logs()[
            -2000:
        ]
