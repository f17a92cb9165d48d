"""Tasks through the gateway, against the real tasks and auth services, database and Redis."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from services.gateway.app import create_app as create_gateway_app
from services.gateway.clients import AuthClient, Clients, FilesClient, TasksClient
from services.gateway.tests.conftest import client_of
from services.tasks.models import LogStream, Task, TaskStatus
from services.tasks.tests.factories import (
    PATHS,
    append_output,
    insert_tasks_at_once,
    move_task,
    stored_chunks,
)
from tests.conftest import (
    GraphQLClient,
    error_codes,
    free_port,
    gateway_settings,
    only_data,
    register,
)

TASK = """
    id name image command status exitCode error errorCode attempts createdAt startedAt
    finishedAt dependsOn { id } inputFile { id } usage { cpuPercent memoryBytes sampledAt }
    timeoutSeconds cpuLimit memoryLimitMb maxRetries network
"""
CREATE = f"mutation ($input: CreateTaskInput!) {{ createTask(input: $input) {{ {TASK} }} }}"
GET = f"query ($id: ID!) {{ task(id: $id) {{ {TASK} }} }}"
CANCEL = f"mutation ($id: ID!) {{ cancelTask(id: $id) {{ {TASK} }} }}"
DELETE = "mutation ($id: ID!) { deleteTask(id: $id) }"
LIST = """
    query ($first: Int, $after: String, $status: TaskStatus) {
      tasks(first: $first, after: $after, status: $status) {
        edges { cursor node { id name status } }
        pageInfo { hasNextPage endCursor }
        totalCount
      }
    }
"""
LOGS = "query ($id: ID!, $tail: Int) { task(id: $id) { status logs(tail: $tail) } }"
LOG_CAP = 1024 * 1024


@dataclass(frozen=True)
class Account:
    """A user registered through the gateway and their access token."""

    id: str
    token: str


def sign_up(gql: GraphQLClient) -> Account:
    """Register a fresh user through the gateway."""
    payload = register(gql)
    return Account(id=payload["user"]["id"], token=payload["accessToken"])


@pytest.fixture
def alice(gql) -> Account:
    """A fresh user."""
    return sign_up(gql)


@pytest.fixture
def bob(gql) -> Account:
    """Another fresh user."""
    return sign_up(gql)


def create(gql: GraphQLClient, user: Account, **fields) -> dict:
    """Create a task through the gateway (busybox echo unless `fields` say otherwise)."""
    task_input = {"image": "busybox:1.36", "command": ["echo", "hi"], **fields}
    body = gql(CREATE, {"input": task_input}, token=user.token)
    assert "errors" not in body, body
    return body["data"]["createTask"]


def get(gql: GraphQLClient, user: Account, task_id: str) -> dict | None:
    """Read a task through the gateway; None when the gateway says null."""
    body = gql(GET, {"id": task_id}, token=user.token)
    assert "errors" not in body, body
    return body["data"]["task"]


def page(gql: GraphQLClient, user: Account, **variables) -> dict:
    """One page of the user's tasks through the gateway."""
    body = gql(LIST, variables, token=user.token)
    assert "errors" not in body, body
    return body["data"]["tasks"]


def bad_input_fields(body: dict) -> dict[str, str]:
    """The fields of the one BAD_USER_INPUT error in `body`."""
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    return error["extensions"]["fields"]


def record_usage(tasks_app, task_id: str, *, cpu_percent: float, memory_bytes: int) -> None:
    """Store a resource sample the way the engine's sampler will."""
    uow = tasks_app.extensions["tasks"].uow()
    with uow:
        task = uow.session.get(Task, uuid.UUID(task_id), with_for_update=True)
        task.cpu_percent, task.memory_bytes = cpu_percent, memory_bytes
        task.usage_sampled_at = datetime.now(UTC)
        uow.commit()


def test_a_created_task_reads_back_and_is_listed(gql, alice):
    env = [{"name": "GREETING", "value": "secret"}]
    created = create(
        gql,
        alice,
        name="hello",
        command=["sh", "-c", "echo $GREETING"],
        env=env,
        timeoutSeconds=30,
        cpuLimit=0.5,
        memoryLimitMb=64,
        maxRetries=2,
    )
    assert {key: created[key] for key in created if key not in ("id", "createdAt")} == {
        "name": "hello",
        "image": "busybox:1.36",
        "command": ["sh", "-c", "echo $GREETING"],
        "status": "PENDING",
        "exitCode": None,
        "error": None,
        "errorCode": None,
        "attempts": 0,
        "startedAt": None,
        "finishedAt": None,
        "dependsOn": [],
        "inputFile": None,
        "usage": None,
        "timeoutSeconds": 30,
        "cpuLimit": 0.5,
        "memoryLimitMb": 64,
        "maxRetries": 2,
        "network": False,
    }
    assert datetime.fromisoformat(created["createdAt"]).tzinfo is not None
    assert get(gql, alice, created["id"]) == created
    listed = page(gql, alice)
    assert listed["totalCount"] == 1
    assert [edge["node"] for edge in listed["edges"]] == [
        {"id": created["id"], "name": "hello", "status": "PENDING"}
    ]
    assert listed["pageInfo"] == {"hasNextPage": False, "endCursor": listed["edges"][0]["cursor"]}


def test_limits_left_out_take_the_servers_defaults(gql, alice, tasks_app):
    policy = tasks_app.extensions["tasks"].policy
    created = create(gql, alice)
    assert (created["name"], created["timeoutSeconds"], created["memoryLimitMb"]) == (
        None,
        policy.default_timeout_seconds,
        policy.default_memory_mb,
    )
    assert (created["cpuLimit"], created["maxRetries"]) == (
        policy.default_cpu,
        policy.default_retries,
    )


def test_paging_through_tasks_newest_first_has_no_duplicates_or_gaps(gql, alice, tasks_app):
    one_by_one = [create(gql, alice, name=f"task-{index}")["id"] for index in range(3)]
    # Four more in one transaction share created_at: the cursor must break the tie by id.
    at_once = insert_tasks_at_once(tasks_app, alice, 4)
    expected = sorted(at_once, key=uuid.UUID, reverse=True) + one_by_one[::-1]

    seen, after, pages = [], None, 0
    while True:
        current = page(gql, alice, first=3, after=after)
        pages += 1
        assert current["totalCount"] == 7
        seen += [edge["node"]["id"] for edge in current["edges"]]
        assert current["pageInfo"]["endCursor"] == current["edges"][-1]["cursor"]
        if not current["pageInfo"]["hasNextPage"]:
            break
        after = current["pageInfo"]["endCursor"]
    assert seen == expected
    assert pages == 3


def test_tasks_filters_by_status(gql, alice, tasks_app):
    pending, running, cancelled = (create(gql, alice)["id"] for _ in range(3))
    move_task(tasks_app, running, *PATHS[TaskStatus.RUNNING])
    assert "errors" not in gql(CANCEL, {"id": cancelled}, token=alice.token)

    for status, task_id in [("PENDING", pending), ("RUNNING", running), ("CANCELLED", cancelled)]:
        filtered = page(gql, alice, status=status)
        assert [edge["node"]["id"] for edge in filtered["edges"]] == [task_id]
        assert filtered["totalCount"] == 1
    assert page(gql, alice, status="SUCCEEDED") == {
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "totalCount": 0,
    }
    assert page(gql, alice)["totalCount"] == 3


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.QUEUED])
def test_cancelling_a_task_that_has_not_started_cancels_it_at_once(gql, alice, tasks_app, status):
    task_id = create(gql, alice)["id"]
    move_task(tasks_app, task_id, *PATHS[status])
    cancelled = gql(CANCEL, {"id": task_id}, token=alice.token)["data"]["cancelTask"]
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["finishedAt"] is not None
    assert get(gql, alice, task_id) == cancelled


def test_cancelling_a_running_task_leaves_the_stop_to_the_engine(gql, alice, tasks_app):
    task_id = create(gql, alice)["id"]
    move_task(tasks_app, task_id, *PATHS[TaskStatus.RUNNING])
    answer = gql(CANCEL, {"id": task_id}, token=alice.token)["data"]["cancelTask"]
    assert (answer["status"], answer["attempts"], answer["finishedAt"]) == ("RUNNING", 1, None)


@pytest.mark.parametrize("status", [TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED])
def test_cancelling_a_finished_task_returns_it_unchanged(gql, alice, tasks_app, status):
    task_id = create(gql, alice)["id"]
    move_task(tasks_app, task_id, *PATHS[status])
    before = get(gql, alice, task_id)
    assert gql(CANCEL, {"id": task_id}, token=alice.token) == {"data": {"cancelTask": before}}
    assert get(gql, alice, task_id) == before


@pytest.mark.parametrize(
    "status",
    [
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.TIMED_OUT,
        TaskStatus.SKIPPED,
    ],
)
def test_deleting_an_ended_task_removes_it_and_its_logs(gql, alice, tasks_app, status):
    task_id = create(gql, alice)["id"]
    move_task(tasks_app, task_id, *PATHS[status])
    append_output(tasks_app, task_id, LogStream.STDOUT, b"bye\n", max_bytes=LOG_CAP)
    assert gql(DELETE, {"id": task_id}, token=alice.token) == {"data": {"deleteTask": True}}
    assert get(gql, alice, task_id) is None
    assert page(gql, alice)["totalCount"] == 0
    assert stored_chunks(tasks_app, task_id) == []
    # The TaskDeleted event is checked at the service (test_task_by_id): here the session's
    # relays, when another module started them, may already have published and removed it.
    body = gql(DELETE, {"id": task_id}, token=alice.token)
    assert error_codes(body) == ["NOT_FOUND"]


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RUNNING])
def test_deleting_a_task_that_has_not_ended_is_a_conflict(gql, alice, tasks_app, status):
    task_id = create(gql, alice)["id"]
    move_task(tasks_app, task_id, *PATHS[status])
    body = gql(DELETE, {"id": task_id}, token=alice.token)
    assert body["data"] is None
    assert error_codes(body) == ["CONFLICT"]
    assert status.value in body["errors"][0]["message"]
    assert get(gql, alice, task_id)["status"] == status.value


def test_another_users_or_an_unknown_task_is_not_found_to_delete(gql, alice, bob, tasks_app):
    task_id = create(gql, alice)["id"]
    move_task(tasks_app, task_id, *PATHS[TaskStatus.SUCCEEDED])
    for user, some_id in ((bob, task_id), (alice, str(uuid.uuid4())), (alice, "../../healthz")):
        body = gql(DELETE, {"id": some_id}, token=user.token)
        assert body["data"] is None
        assert error_codes(body) == ["NOT_FOUND"]
    assert get(gql, alice, task_id)["status"] == "SUCCEEDED"


def test_a_failed_task_shows_its_outcome_and_a_running_one_its_usage(gql, alice, tasks_app):
    task_id = create(gql, alice)["id"]
    move_task(tasks_app, task_id, *PATHS[TaskStatus.RUNNING])
    record_usage(tasks_app, task_id, cpu_percent=42.5, memory_bytes=3 * 2**30)
    running = get(gql, alice, task_id)
    assert running["status"] == "RUNNING"
    assert running["startedAt"] is not None
    assert running["usage"]["cpuPercent"] == 42.5
    assert running["usage"]["memoryBytes"] == 3 * 2**30  # beyond 32 bits: a BigInt
    assert datetime.fromisoformat(running["usage"]["sampledAt"]).tzinfo is not None

    move_task(tasks_app, task_id, TaskStatus.FAILED)
    failed = get(gql, alice, task_id)
    assert (failed["status"], failed["exitCode"], failed["errorCode"], failed["error"]) == (
        "FAILED",
        3,
        "NON_ZERO_EXIT",
        "Exited with 3.",
    )
    assert failed["attempts"] == 1
    assert datetime.fromisoformat(failed["finishedAt"]) >= datetime.fromisoformat(
        failed["startedAt"]
    )


def test_another_users_task_is_null_to_read_and_not_found_to_cancel(gql, alice, bob):
    task_id = create(gql, alice)["id"]
    assert gql(GET, {"id": task_id}, token=bob.token) == {"data": {"task": None}}
    body = gql(CANCEL, {"id": task_id}, token=bob.token)
    assert body["data"] is None
    assert error_codes(body) == ["NOT_FOUND"]
    assert body["errors"][0]["message"] == "Task not found."
    assert page(gql, bob)["totalCount"] == 0
    assert get(gql, alice, task_id)["status"] == "PENDING"


@pytest.mark.parametrize(
    "task_id", ["3c9e1f7a-2b4d-4e6f-8a0c-1d2e3f4a5b6c", "not-a-task-id", "../../healthz"]
)
def test_an_unknown_or_malformed_id_is_null_to_read_and_not_found_to_cancel(gql, alice, task_id):
    assert gql(GET, {"id": task_id}, token=alice.token) == {"data": {"task": None}}
    assert error_codes(gql(CANCEL, {"id": task_id}, token=alice.token)) == ["NOT_FOUND"]


def test_invalid_input_names_every_field_in_camel_case(gql, alice):
    task_input = {
        "image": "Not An Image!",
        "command": [],
        "env": [{"name": "1BAD", "value": "x"}],
        "timeoutSeconds": 0,
        "cpuLimit": 0.0,
        "memoryLimitMb": 1,
        "maxRetries": -1,
    }
    body = gql(CREATE, {"input": task_input}, token=alice.token)
    assert body["data"] is None
    fields = bad_input_fields(body)
    assert set(fields) == {
        "image",
        "command",
        "env.0.name",
        "timeoutSeconds",
        "cpuLimit",
        "memoryLimitMb",
        "maxRetries",
    }
    message = body["errors"][0]["message"]
    assert "timeoutSeconds" in message and "timeout_seconds" not in message
    assert page(gql, alice)["totalCount"] == 0


def test_limits_over_the_servers_maximums_are_bad_user_input(gql, alice, tasks_app):
    policy = tasks_app.extensions["tasks"].policy
    task_input = {
        "image": "busybox",
        "command": ["true"],
        "timeoutSeconds": policy.max_timeout_seconds + 1,
        "cpuLimit": policy.max_cpu + 1,
        "memoryLimitMb": policy.max_memory_mb + 1,
        "maxRetries": policy.max_retries + 1,
        "network": True,
    }
    fields = bad_input_fields(gql(CREATE, {"input": task_input}, token=alice.token))
    assert set(fields) == {"timeoutSeconds", "cpuLimit", "memoryLimitMb", "maxRetries", "network"}
    assert fields["memoryLimitMb"] == f"Must be at most {policy.max_memory_mb} MiB."


def test_an_unknown_dependency_is_bad_user_input_naming_it(gql, alice):
    unknown = str(uuid.uuid4())
    task_input = {"image": "busybox", "command": ["true"], "dependsOn": [unknown]}
    fields = bad_input_fields(gql(CREATE, {"input": task_input}, token=alice.token))
    assert list(fields) == ["dependsOn"] and unknown in fields["dependsOn"]
    assert page(gql, alice)["totalCount"] == 0


def test_an_input_file_id_that_is_no_uuid_is_bad_user_input(gql, alice):
    task_input = {"image": "busybox", "command": ["true"], "inputFileId": "f"}
    fields = bad_input_fields(gql(CREATE, {"input": task_input}, token=alice.token))
    assert fields == {"inputFileId": "Not a valid UUID."}
    assert page(gql, alice)["totalCount"] == 0


def test_a_task_with_an_input_file_waits_pending_and_shows_no_file_that_is_not_there(gql, alice):
    task_input = {"image": "busybox", "command": ["true"], "inputFileId": str(uuid.uuid4())}
    created = only_data(gql(CREATE, {"input": task_input}, token=alice.token))["createTask"]
    assert created["status"] == "PENDING"
    assert created["inputFile"] is None


@pytest.mark.parametrize(
    ("variables", "field"),
    [({"first": 0}, "first"), ({"first": 101}, "first"), ({"after": "garbage"}, "after")],
)
def test_bad_paging_arguments_are_bad_user_input(gql, alice, variables, field):
    body = gql(LIST, variables, token=alice.token)
    assert set(bad_input_fields(body)) == {field}
    assert body["errors"][0]["path"] == ["tasks"]


def test_logs_return_the_stored_output_and_its_tail(gql, alice, tasks_app):
    task_id = create(gql, alice)["id"]
    assert gql(LOGS, {"id": task_id}, token=alice.token)["data"]["task"]["logs"] == ""
    move_task(tasks_app, task_id, *PATHS[TaskStatus.RUNNING])
    append_output(tasks_app, task_id, LogStream.STDOUT, b"one\ntwo\n", LOG_CAP)
    append_output(tasks_app, task_id, LogStream.STDERR, "h\u00e9las\n".encode(), LOG_CAP)
    append_output(tasks_app, task_id, LogStream.STDOUT, b"three\n", LOG_CAP)

    whole = gql(LOGS, {"id": task_id}, token=alice.token)["data"]["task"]
    assert whole == {"status": "RUNNING", "logs": "one\ntwo\nh\u00e9las\nthree\n"}
    tail = gql(LOGS, {"id": task_id, "tail": 2}, token=alice.token)["data"]["task"]["logs"]
    assert tail == "h\u00e9las\nthree\n"
    listed = gql("{ tasks { edges { node { logs(tail: 1) } } } }", token=alice.token)["data"][
        "tasks"
    ]["edges"]
    assert listed == [{"node": {"logs": "three\n"}}]


def test_a_bad_tail_is_bad_user_input_on_the_logs_field(gql, alice):
    task_id = create(gql, alice)["id"]
    body = gql(LOGS, {"id": task_id, "tail": 0}, token=alice.token)
    assert set(bad_input_fields(body)) == {"tail"}
    assert body["errors"][0]["path"] == ["task", "logs"]
    assert body["data"] == {"task": None}


class CountingTasksClient(TasksClient):
    """The real tasks client, counting how often it reads logs."""

    log_reads = 0

    async def read_logs(self, caller, **kwargs):
        """Count, then read for real."""
        self.log_reads += 1
        return await super().read_logs(caller, **kwargs)


def test_logs_are_fetched_only_when_selected(auth_server, tasks_server, gql, alice):
    settings = gateway_settings(auth_server.url, tasks_url=tasks_server.url)
    tasks = CountingTasksClient.from_settings(settings, tasks_server.url)
    clients = Clients(
        auth=AuthClient.from_settings(settings, auth_server.url),
        files=FilesClient.from_settings(settings, settings.FILES_SERVICE_URL),
        tasks=tasks,
    )
    counted = GraphQLClient(client_of(create_gateway_app(settings, clients=clients)))
    for _ in range(3):
        create(gql, alice)

    without = counted("{ tasks { edges { node { id status } } } }", token=alice.token)
    assert len(without["data"]["tasks"]["edges"]) == 3
    assert tasks.log_reads == 0
    with_logs = counted("{ tasks { edges { node { id logs } } } }", token=alice.token)
    assert "errors" not in with_logs
    assert tasks.log_reads == 3


OPERATIONS = [
    (GET, lambda: {"id": str(uuid.uuid4())}),
    (LIST, dict),
    (CREATE, lambda: {"input": {"image": "busybox", "command": ["true"]}}),
    (CANCEL, lambda: {"id": str(uuid.uuid4())}),
]


@pytest.mark.parametrize(("query", "variables"), OPERATIONS)
@pytest.mark.parametrize("token", [None, "garbage"])
def test_task_operations_without_a_valid_token_are_unauthenticated(gql, query, variables, token):
    response = gql.post(query, variables(), token=token)
    assert response.status_code == 200
    # task is nullable, so it alone answers {"task": null}; the others null the whole data.
    assert not any((response.json()["data"] or {}).values())
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


def test_a_logged_out_token_cannot_reach_tasks(gql, alice):
    create(gql, alice)
    assert gql("mutation { logout }", token=alice.token) == {"data": {"logout": True}}
    assert error_codes(gql(LIST, token=alice.token)) == ["UNAUTHENTICATED"]


def test_tasks_down_is_service_unavailable_with_http_200(auth_server, gql, alice):
    port = free_port()
    settings = gateway_settings(auth_server.url, tasks_url=f"http://127.0.0.1:{port}")
    down = GraphQLClient(client_of(create_gateway_app(settings)))
    for query, variables in OPERATIONS:
        response = down.post(query, variables(), token=alice.token)
        assert response.status_code == 200
        body = response.json()
        assert error_codes(body) == ["SERVICE_UNAVAILABLE"]
        assert body["errors"][0]["message"] == "The tasks service is unavailable. Try again later."
        text = response.text
        assert str(port) not in text and "Traceback" not in text and "http://" not in text
    # Accounts do not depend on the tasks service.
    assert only_data(down("{ me { id } }", token=alice.token)) == {"me": {"id": alice.id}}


def test_an_image_on_a_loopback_registry_is_bad_user_input_on_the_image_field(gql, alice):
    task_input = {"image": "127.0.0.1:18555/internal/probe:latest", "command": ["true"]}
    body = gql(CREATE, {"input": task_input}, token=alice.token)
    assert body["data"] is None
    assert set(bad_input_fields(body)) == {"image"}
    assert page(gql, alice)["totalCount"] == 0


EXECUTOR = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id executor } }"


def test_a_task_names_its_executor_and_docker_is_the_default(gql, alice):
    body = gql(EXECUTOR, {"input": {"image": "busybox", "command": ["true"]}}, token=alice.token)
    assert "errors" not in body, body
    assert body["data"]["createTask"]["executor"] == "docker"
    task_input = {"image": "busybox", "command": ["true"], "executor": "docker"}
    body = gql(EXECUTOR, {"input": task_input}, token=alice.token)
    assert body["data"]["createTask"]["executor"] == "docker"


@pytest.mark.parametrize("executor", ["swarm", "kubernetes", ""])
def test_an_executor_the_operator_did_not_enable_is_bad_user_input(gql, alice, executor):
    task_input = {"image": "busybox", "command": ["true"], "executor": executor}
    fields = bad_input_fields(gql(EXECUTOR, {"input": task_input}, token=alice.token))
    assert fields == {"executor": "Must be one of this server's executors: docker."}
    assert page(gql, alice)["totalCount"] == 0
