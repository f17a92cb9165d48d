"""createTask guards the engine: no pulls into the server's network, per-user caps and rate."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from services.tasks.models import TaskStatus
from services.tasks.tests.factories import create_task, move_task, task_payload


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with a body a probe would love to read back, and records it."""

    def do_GET(self):  # noqa: N802 (the http.server spelling)
        self.server.requests.append(self.path)
        body = b"internal-secret-from-the-probe-listener"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture
def listener() -> Iterator[http.server.HTTPServer]:
    """A real HTTP server on a loopback port that records each request it gets."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "registry",
    ["127.0.0.1:{port}", "localhost:{port}", "[::ffff:127.0.0.1]:{port}", "0x7f.1:{port}"],
)
def test_an_image_on_a_loopback_registry_is_refused_and_never_contacted(
    client, alice, listener, registry
):
    host = registry.format(port=listener.server_address[1])
    response = client.post(
        "/v1/tasks",
        json=task_payload(image=f"{host}/internal/probe:latest"),
        headers=alice.headers,
    )
    assert response.status_code == 400, response.json
    assert response.json["code"] == "BAD_USER_INPUT"
    assert set(response.json["fields"]) == {"image"}
    assert "internal-secret" not in response.get_data(as_text=True)
    assert listener.requests == []


def test_a_closed_port_and_an_open_one_answer_alike(client, alice, listener):
    answers = []
    for port in (1, 6379, listener.server_address[1]):
        response = client.post(
            "/v1/tasks", json=task_payload(image=f"127.0.0.1:{port}/x:1"), headers=alice.headers
        )
        answers.append((response.status_code, response.json["fields"]))
    assert answers[0] == answers[1] == answers[2]
    assert listener.requests == []


def test_a_registry_resolving_to_loopback_is_refused(client, alice):
    # `localhost.` and `ip6-localhost`-style names resolve to loopback like `localhost` does.
    response = client.post(
        "/v1/tasks", json=task_payload(image="localhost./app:1"), headers=alice.headers
    )
    assert response.status_code == 400
    assert "image" in response.json["fields"]


def test_a_digest_pinned_image_is_accepted(client, alice):
    image = "busybox@sha256:" + "0123456789abcdef" * 4
    assert create_task(client, alice, image=image)["image"] == image


def test_a_user_with_too_many_unfinished_tasks_is_refused_with_conflict(make_app, alice, bob):
    app = make_app(MAX_ACTIVE_TASKS_PER_USER=3)
    client = app.test_client()
    tasks = [create_task(client, alice) for _ in range(3)]
    move_task(app, tasks[0]["id"], TaskStatus.QUEUED, TaskStatus.RUNNING)
    move_task(app, tasks[1]["id"], TaskStatus.QUEUED)

    refused = client.post("/v1/tasks", json=task_payload(), headers=alice.headers)
    assert refused.status_code == 409, refused.json
    assert refused.json["code"] == "CONFLICT"
    assert "3 unfinished tasks" in refused.json["message"]
    # Another user's room is their own.
    assert create_task(client, bob)["status"] == "PENDING"
    # A finished task frees its place.
    move_task(app, tasks[0]["id"], TaskStatus.SUCCEEDED)
    assert create_task(client, alice)["status"] == "PENDING"


def test_concurrent_creations_never_exceed_the_cap(make_app, alice):
    app = make_app(MAX_ACTIVE_TASKS_PER_USER=4)
    statuses: list[int] = []

    def create() -> None:
        response = app.test_client().post("/v1/tasks", json=task_payload(), headers=alice.headers)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] * 4 + [409] * 6


def test_creating_tasks_too_fast_is_rate_limited_per_user(make_app, alice, bob):
    client = make_app(CREATE_LIMIT_PER_USER="3/minute").test_client()
    for _ in range(3):
        create_task(client, alice)
    limited = client.post("/v1/tasks", json=task_payload(), headers=alice.headers)
    assert limited.status_code == 429, limited.json
    assert limited.json["code"] == "RATE_LIMITED"
    assert int(limited.headers["Retry-After"]) > 0
    assert create_task(client, bob)["status"] == "PENDING"
