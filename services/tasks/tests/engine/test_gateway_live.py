"""A task run by the real engine, followed live through the gateway's subscriptions.

Everything is real: the gateway under uvicorn, the tasks service on a loopback port, its relay,
dispatch consumer, Celery worker and monitor (the package's engine), RabbitMQ, PostgreSQL and
the Docker engine with the test image.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from services.tasks.tests.engine.conftest import TEST_IMAGE
from shared.testing import ServerThread
from tests.conftest import gateway_env, uvicorn_gateway
from tests.gateway_clients import Account, Gateway, Socket, session

CREATE = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id status } }"
STATUS = "query ($id: ID!) { task(id: $id) { status } }"
TASK_UPDATED = "subscription ($id: ID!) { taskUpdated(id: $id) { status exitCode } }"
TASK_LOGS = "subscription ($id: ID!) { taskLogs(id: $id) { stream text } }"
#: The task writes, pauses long enough to be seen RUNNING with output, writes again.
SCRIPT = "echo first; echo oops >&2; sleep 3; echo last"


@pytest.fixture(scope="module")
def served_gateway(tasks_app, auth_server, engine) -> Iterator[str]:
    """A gateway under uvicorn in front of this run's tasks service; its base URL."""
    with ServerThread(tasks_app) as tasks_server:
        with uvicorn_gateway(gateway_env(auth_server.url, tasks_url=tasks_server.url)) as url:
            yield url


def test_a_running_task_streams_its_status_and_output_live_then_completes(served_gateway, alice):
    gateway = Gateway(served_gateway)
    user = Account(id=alice.id, token=alice.access_token)
    created = gateway(
        CREATE,
        {"input": {"image": TEST_IMAGE, "command": ["sh", "-c", SCRIPT], "name": "live"}},
        token=user.token,
    )
    task_id = created["data"]["createTask"]["id"]

    async def scenario(socket: Socket) -> list[tuple[float, dict, str | None]]:
        await socket.subscribe("status", TASK_UPDATED, {"id": task_id})
        await socket.subscribe("logs", TASK_LOGS, {"id": task_id})
        seen: list[tuple[float, dict, str | None]] = []
        completed: set[str] = set()
        while completed != {"status", "logs"}:
            message = await socket.receive()
            received_at = time.monotonic()
            if message["type"] == "complete":
                completed.add(message["id"])
                continue
            assert message["type"] == "next" and "errors" not in message["payload"], message
            status_then = None
            if (
                message["id"] == "logs"
                and "first" in message["payload"]["data"]["taskLogs"]["text"]
            ):
                # What the task is while its first line is being shown to the subscriber.
                answer = await asyncio.to_thread(gateway, STATUS, {"id": task_id}, token=user.token)
                status_then = answer["data"]["task"]["status"]
            seen.append((received_at, message, status_then))
        return seen

    seen = session(served_gateway, user, scenario)
    statuses = [
        m["payload"]["data"]["taskUpdated"]["status"] for _, m, _ in seen if m["id"] == "status"
    ]
    # The first state is whatever the task was at subscription; then changes, in order.
    assert statuses[-2:] == ["RUNNING", "SUCCEEDED"], statuses
    order = ["PENDING", "QUEUED", "RUNNING", "SUCCEEDED"]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)

    logs = [m["payload"]["data"]["taskLogs"] for _, m, _ in seen if m["id"] == "logs"]
    stdout = "".join(c["text"] for c in logs if c["stream"] == "stdout")
    stderr = "".join(c["text"] for c in logs if c["stream"] == "stderr")
    assert (stdout, stderr) == ("first\nlast\n", "oops\n")
    # Live: the first line reached the subscriber while the task was still running.
    assert [s for _, _, s in seen if s is not None] == ["RUNNING"]
    first_at = next(t for t, m, s in seen if s is not None)
    last_at = next(
        t
        for t, m, _ in seen
        if m["id"] == "logs" and "last" in m["payload"]["data"]["taskLogs"]["text"]
    )
    # The task sleeps 3 s between them; delivery delays may differ by a flush or so.
    assert last_at - first_at > 1.5, "the output came all at once, not as it was written"
