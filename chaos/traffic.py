"""Traffic through the gateway the whole run: logins, small uploads, trivial tasks, workflows.

Each client thread picks an operation, sends it as Apollo Client would, and records every
answer (its HTTP status and GraphQL error codes) and every piece of work the gateway accepted
(a file, a task, a workflow, with its id), so a row can tell afterwards what became of it.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from services.gateway.tests.apollo import apollo_upload

IMAGE = os.environ.get("DOCKYARD_TEST_IMAGE", "dockyard/busybox:test")
PASSWORD = "chaos monkey, rusty anchor"
REGISTER = (
    "mutation ($e: String!, $p: String!) { register(email: $e, password: $p) { accessToken } }"
)
LOGIN = "mutation ($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
LOGOUT = "mutation { logout }"
ME = "{ me { id } }"
CREATE_TASK = "mutation ($i: CreateTaskInput!) { createTask(input: $i) { id } }"
CREATE_WORKFLOW = "mutation ($i: CreateWorkflowInput!) { createWorkflow(input: $i) { id } }"
TASK = {"image": IMAGE, "command": ["echo", "chaos"]}
#: The operations a client picks from, with their weights.
#: Tasks stay well under what the engine starts per second on a loaded 2-core machine (about
#: one a second): the drill is about faults, not overload, and a backlog would hide them.
MIX = (("upload", 6), ("me", 4), ("login", 2), ("task", 1))
#: One task in WORKFLOW_SHARE becomes a two-step workflow instead.
WORKFLOW_SHARE = 5
REGISTER_ATTEMPTS = 10


@dataclass(frozen=True)
class Answer:
    """One request's outcome as the client saw it."""

    at: float
    operation: str
    status: int
    codes: tuple[str, ...]

    @property
    def server_error(self) -> bool:
        """A 5xx other than an explicit 503: the server's fault, never acceptable."""
        if self.status >= 500 and self.status != 503:
            return True
        return "INTERNAL_SERVER_ERROR" in self.codes

    @property
    def unavailable(self) -> bool:
        """An explicit 503 / SERVICE_UNAVAILABLE."""
        return self.status == 503 or "SERVICE_UNAVAILABLE" in self.codes


@dataclass(frozen=True)
class Work:
    """Something the gateway accepted: a file, task or workflow, by id."""

    at: float
    kind: str
    id: str


@dataclass
class User:
    """A registered account and its current access token."""

    email: str
    token: str


class GatewayClient:
    """GraphQL over HTTP to the gateway, one connection per call (as the drill's faults demand)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path

    def send(
        self, body: bytes, headers: dict[str, str], timeout: float = 30
    ) -> tuple[int, dict | None]:
        """POST a body; (HTTP status, JSON answer or None). A connection error is status 0."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request("POST", self.path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except OSError:
            return 0, None
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, None

    def call(
        self, query: str, variables: dict | None = None, token: str | None = None
    ) -> tuple[int, dict | None]:
        """One GraphQL operation."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        return self.send(body, headers)

    def upload(self, content: bytes, token: str) -> tuple[int, dict | None]:
        """uploadFile with `content` as a small text file."""
        request = apollo_upload(f"chaos-{uuid.uuid4().hex[:8]}.txt", file_type="text/plain")
        return self.send(request.body(content), request.headers(token))


def error_codes(answer: dict | None) -> tuple[str, ...]:
    """The extensions.code of each GraphQL error in an answer."""
    if not answer:
        return ()
    return tuple(
        (error.get("extensions") or {}).get("code", "?") for error in answer.get("errors") or []
    )


def data(answer: dict | None, field_name: str) -> dict | None:
    """answer.data[field_name] when the operation succeeded."""
    if not answer or answer.get("errors"):
        return None
    return (answer.get("data") or {}).get(field_name)


def register_user(client: GatewayClient, email: str) -> User:
    """Register an account with PASSWORD, retrying while the gateway answers unavailable."""
    # Password hashing makes auth the slowest service on a loaded machine: a client retries a
    # registration that timed out (SERVICE_UNAVAILABLE), as a person would.
    for _attempt in range(REGISTER_ATTEMPTS):
        status, answer = client.call(REGISTER, {"e": email, "p": PASSWORD})
        if (payload := data(answer, "register")) is not None:
            return User(email, payload["accessToken"])
        if "SERVICE_UNAVAILABLE" not in error_codes(answer):
            raise RuntimeError(f"registration failed: {status} {answer}")
        time.sleep(1)
    raise RuntimeError(f"registration still unavailable: {status} {answer}")


@dataclass
class Traffic:
    """Client threads sending the MIX at a steady pace until stopped; what they saw."""

    client: GatewayClient
    threads: int = 4
    #: Pause of each thread between two operations.
    pause: float = 0.25
    users: list[User] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _paused: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, count: int) -> None:
        """Register `count` users to send the traffic as."""
        for _ in range(count):
            email = f"chaos-{uuid.uuid4().hex[:12]}@example.com"
            self.users.append(register_user(self.client, email))

    def start(self) -> None:
        """Start the client threads."""
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        """Stop the client threads (each finishes its current call)."""
        self._stop.set()
        for thread in self._workers:
            thread.join(60)

    def pause_work(self, paused: bool) -> None:
        """Stop (or resume) submitting new work, to let a row's work settle."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        operations = [name for name, weight in MIX for _ in range(weight)]
        while not self._stop.is_set():
            if self._paused.is_set():
                time.sleep(0.1)
                continue
            user = rng.choice(self.users)
            operation = rng.choice(operations)
            if operation == "task" and rng.randrange(WORKFLOW_SHARE) == 0:
                operation = "workflow"
            started = time.monotonic()
            status, answer, accepted = self._perform(operation, user, rng)
            with self._lock:
                self.answers.append(Answer(started, operation, status, error_codes(answer)))
                if accepted is not None:
                    self.work.append(Work(started, operation, accepted))
            time.sleep(self.pause)

    def _perform(
        self, operation: str, user: User, rng: random.Random
    ) -> tuple[int, dict | None, str | None]:
        """Send one operation; (status, answer, id of accepted work or None)."""
        if operation == "upload":
            content = f"chaos {uuid.uuid4()}\n".encode() * rng.randint(1, 20)
            status, answer = self.client.upload(content, user.token)
            accepted = data(answer, "uploadFile")
        elif operation == "task":
            status, answer = self.client.call(CREATE_TASK, {"i": TASK}, user.token)
            accepted = data(answer, "createTask")
        elif operation == "workflow":
            steps = [
                {"name": "first", "task": TASK},
                {"name": "second", "task": TASK, "dependsOn": ["first"]},
            ]
            status, answer = self.client.call(CREATE_WORKFLOW, {"i": {"steps": steps}}, user.token)
            accepted = data(answer, "createWorkflow")
        elif operation == "login":
            status, answer = self.client.call(LOGIN, {"e": user.email, "p": PASSWORD})
            if (payload := data(answer, "login")) is not None:
                user.token = payload["accessToken"]
            return status, answer, None
        else:
            status, answer = self.client.call(ME, token=user.token)
            return status, answer, None
        return status, answer, None if accepted is None else accepted["id"]

    def since(self, started: float, until: float | None = None) -> tuple[list[Answer], list[Work]]:
        """The answers and accepted work between two monotonic times."""
        end = until if until is not None else float("inf")
        with self._lock:
            return (
                [a for a in self.answers if started <= a.at < end],
                [w for w in self.work if started <= w.at < end],
            )
