"""Stopping and restarting the servers as deployments do loses no request.

- SIGTERM (what supervisord, `docker stop` and Kubernetes send) lets a REST service under the
  deployed gunicorn settings, and the gateway under its uvicorn servers, finish the requests
  already in flight, then exit 0: here a request whose body is still arriving when the signal
  lands.
- SIGHUP makes gunicorn replace its workers while the master keeps the listening socket, so a
  REST service is restarted (new code, new settings) while a client keeps calling, and every
  call is answered: connections made while the new worker boots wait in the socket's backlog.

- A rolling restart of the gateway on one host (docs/operations.md): a new process starts on
  the same port beside the old one (SO_REUSEPORT), and once it is ready the old one gets
  SIGTERM, while clients keep calling over new and kept-alive connections; every call is
  answered. Under Kubernetes the balancer does this between replicas instead (two replicas, a
  readiness probe and a preStop pause in deploy/k8s).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

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


#: Rolling restarts of the gateway the test makes while clients keep calling.
ROLLING_RESTARTS = 3
TYPENAME = {"query": "{ __typename }"}
ME = {"query": "{ me { email } }"}
#: What a client sees when a kept-alive connection is closed as its request goes out.
CLOSED_UNDER_REQUEST = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def _cannot(reason: str) -> None:
    """Fail in CI (it runs as root on a recent kernel), skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def tcp_migrate_req() -> Iterator[None]:
    """net.ipv4.tcp_migrate_req on for the block, then as it was (docs/operations.md)."""
    setting = Path("/proc/sys/net/ipv4/tcp_migrate_req")
    if not setting.exists():
        _cannot("the kernel has no net.ipv4.tcp_migrate_req (before Linux 5.14)")
    before = setting.read_text().strip()
    if before != "1":
        try:
            setting.write_text("1")
        except OSError as exc:
            _cannot(f"cannot set net.ipv4.tcp_migrate_req: {exc}")
    try:
        yield
    finally:
        if before != "1":
            setting.write_text(before)


@dataclass
class Call:
    """One call a client made: when, how it ended, and over what connection."""

    started: float
    ended: float
    outcome: object
    reused: bool = False
    retried: bool = False


class Callers:
    """Threads calling the gateway's /graphql until stopped, each call recorded.

    Fresh callers open a connection per call, as a balancer or a one-shot client does, and
    never retry. Kept-alive callers keep one connection and, like browsers, resend a request
    once when the server closed that connection under it before answering a byte; that race is
    HTTP/1.1's own (a server may close an idle connection at any time, RFC 9112 9.3.1).
    """

    def __init__(self, port: int, token: str, email: str, *, fresh: int, kept_alive: int) -> None:
        self.port = port
        self.expected = [
            (TYPENAME, {}, {"__typename": "Query"}),
            (ME, {"Authorization": f"Bearer {token}"}, {"me": {"email": email}}),
        ]
        self.calls: list[Call] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.call_fresh) for _ in range(fresh)] + [
            threading.Thread(target=self.call_kept_alive) for _ in range(kept_alive)
        ]

    def __enter__(self) -> Callers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)

    def calls_between(self, start: float, end: float) -> list[Call]:
        """Calls that started in [start, end]."""
        return [call for call in list(self.calls) if start <= call.started <= end]

    def _post(self, connection: http.client.HTTPConnection, number: int) -> object:
        """POST the `number`th operation; True if answered as expected, else what came back."""
        body, headers, expected = self.expected[number % len(self.expected)]
        connection.request(
            "POST",
            "/graphql",
            body=json.dumps(body),
            headers={"Content-Type": "application/json", **headers},
        )
        response = connection.getresponse()
        payload = response.read()
        if response.status == 200:
            answer = json.loads(payload)
            if answer.get("data") == expected and "errors" not in answer:
                return True
        return (response.status, payload[:200])

    def call_fresh(self) -> None:
        """A new connection for each call, closed after it."""
        number = 0
        while not self.stopping.is_set():
            number += 1
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            started = time.monotonic()
            try:
                outcome = self._post(connection, number)
            except OSError as exc:
                outcome = repr(exc)
            finally:
                connection.close()
            self.calls.append(Call(started, time.monotonic(), outcome))

    def call_kept_alive(self) -> None:
        """One connection for as long as the server keeps it; a new one when it closes it."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        number = 0
        while not self.stopping.is_set():
            number += 1
            started = time.monotonic()
            reused = connection.sock is not None
            retried = False
            try:
                try:
                    outcome = self._post(connection, number)
                except CLOSED_UNDER_REQUEST:
                    connection.close()
                    if not reused:
                        raise
                    retried = True
                    outcome = self._post(connection, number)
            except OSError as exc:
                connection.close()
                outcome = repr(exc)
            self.calls.append(Call(started, time.monotonic(), outcome, reused, retried))
        connection.close()


def _register_through(url: str) -> tuple[str, str]:
    """A new user registered through the gateway at `url`: (access token, email)."""
    email = unique_email("rolling")
    query = (
        "mutation ($e: String!, $p: String!) { register(email: $e, password: $p) { accessToken } }"
    )
    response = requests.post(
        f"{url}/graphql",
        json={"query": query, "variables": {"e": email, "p": PASSWORD}},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["register"]["accessToken"], email


def test_a_rolling_restart_of_the_gateway_answers_every_call(auth_server):
    port = free_port()
    env = gateway_env(auth_server.url, GATEWAY_REUSE_PORT="true")
    windows = []
    with tcp_migrate_req(), ExitStack() as everything:
        old_stack = everything.enter_context(ExitStack())
        old = old_stack.enter_context(gateway_process(env, port=port))
        token, email = _register_through(old.url)
        with Callers(port, token, email, fresh=4, kept_alive=2) as callers:
            for _ in range(ROLLING_RESTARTS):
                # The procedure of docs/operations.md: start the new one beside the old one,
                # wait for its readiness, then SIGTERM the old one.
                begun = time.monotonic()
                new_stack = everything.enter_context(ExitStack())
                new = new_stack.enter_context(gateway_process(env, port=port))
                new.process.wait_ready(url=f"{new.internal_url}/readyz", timeout=30)
                signalled = time.monotonic()
                _stop(old.process)
                assert old.process.process.wait(timeout=DRAIN_DEADLINE) == 0, old.process.logs()[
                    -2000:
                ]
                exited = time.monotonic()
                old_stack.close()
                old, old_stack = new, new_stack
                # Calls keep flowing to the new one before the next restart.
                seen = len(callers.calls)
                deadline = time.monotonic() + 30
                while len(callers.calls) < seen + 50:
                    assert time.monotonic() < deadline, f"calls stalled: {callers.calls[-5:]}"
                    time.sleep(0.05)
                windows.append((begun, signalled, exited))
    calls = callers.calls
    failed = [call for call in calls if call.outcome is not True]
    assert not failed, failed[:5]
    for begun, signalled, exited in windows:
        # Calls ran throughout each restart, and some were in flight as the old one was told
        # to stop.
        assert len(callers.calls_between(begun, exited)) >= 50
        assert [call for call in calls if call.started < signalled < call.ended]
    assert [call for call in calls if call.reused], "the kept-alive callers never reused"


def test_without_reuse_port_a_second_gateway_cannot_take_the_port(auth_server):
    env = gateway_env(auth_server.url, GATEWAY_REUSE_PORT="false")
    with gateway_process(env) as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="cannot listen"), gateway_process(env, port=port):
            pass
        assert requests.post(f"{first.url}/graphql", json=TYPENAME, timeout=10).json() == {
            "data": {"__typename": "Query"}
        }
