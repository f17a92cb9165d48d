"""Account deletion end to end: the gateway, the three services and every process behind them.

Real processes: auth's relay, consumer and saga sweep; files' relay and consumer; tasks' relay,
consumer, launcher, Celery worker and monitor (with containers on the Docker engine). A user
with a stored file and a running task deletes their account; the saga must reach SUCCEEDED and
leave nothing behind, also when a participant's consumer is killed mid-saga and comes back.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from services.auth.deletion import auth_sagas
from services.tasks.containers import LABEL_OWNER, namespace_filter
from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixture
    TEST_IMAGE,
    docker_client,
    running_engine,
    wait_for,
)
from shared.messaging.broker import close_quietly, connect
from shared.messaging.topology import Topology
from shared.processes import ManagedProcess
from tests.conftest import (
    BIN,
    PASSWORD,
    REPO,
    FilesBackend,
    gateway_env,
    relay,
    unique_email,
    uvicorn_gateway,
)
from tests.gateway_clients import Account, Gateway, codes, upload

DELETE = "mutation ($p: String) { deleteAccount(password: $p) }"
LOGIN = "mutation ($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
REGISTER = (
    "mutation ($e: String!, $p: String!) "
    "{ register(email: $e, password: $p) { accessToken user { id } } }"
)
ME = "{ me { id } }"
CREATE = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id status } }"
STATUS = "query ($id: ID!) { task(id: $id) { status } }"
NOTIFICATIONS = "{ notifications { edges { node { subjectId } } } }"
RULES = (
    "mutation ($rules: [NotificationRuleInput!]!) "
    "{ updateNotificationSettings(rules: $rules) { event channels } }"
)


def _process(name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
    return ManagedProcess(name, argv, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def files_backend(files_app, files_server) -> FilesBackend:
    """The session's files service on its local directory."""
    return FilesBackend("local", files_app, files_server.url)


#: A short step timeout, so a participant that is down gets the request again (the sweep's
#: work) and must take the duplicates in its stride; many attempts, so the saga never fails.
SHORT_STEPS = {
    "AUTH_ACCOUNT_DELETION_STEP_TIMEOUT_SECONDS": "2",
    "AUTH_ACCOUNT_DELETION_STEP_ATTEMPTS": "60",
}


@pytest.fixture(scope="module")
def short_steps() -> Iterator[None]:
    """The session's auth service (in this process) starts sagas with SHORT_STEPS too."""
    saved = {name: os.environ.get(name) for name in SHORT_STEPS}
    os.environ.update(SHORT_STEPS)
    auth_sagas.cache_clear()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    auth_sagas.cache_clear()


@pytest.fixture(scope="module")
def deletion_processes(test_env, auth_server, files_backend, docker_client, short_steps):  # noqa: F811
    """Every process the saga needs; the files consumer is handed out to be killed."""
    env = {**os.environ, **test_env.env(), **SHORT_STEPS}
    files_env = {**env, **files_backend.storage_env()}
    dockyard = str(BIN / "dockyard")
    files_consumer = _process("files consumer", [dockyard, "consume", "files"], files_env)
    auth_consumer = _process("auth consumer", [dockyard, "consume", "auth"], env)
    sweep = _process("auth sagas sweep", [dockyard, "sagas", "sweep", "auth"], env)
    with (
        relay("auth"),
        relay("files"),
        running_engine(test_env, auth_server, docker_client) as engine,
        auth_consumer,
        files_consumer,
        sweep,
    ):
        for process in (auth_consumer, files_consumer):
            process.wait_ready(log_line="consumer started")
        yield {"files consumer": files_consumer, "tasks consumer": engine["consume"]}


@pytest.fixture(scope="module")
def gateway(auth_server, tasks_server, files_backend, deletion_processes) -> Iterator[Gateway]:
    """A gateway under uvicorn in front of the session's services."""
    env = gateway_env(auth_server.url, tasks_url=tasks_server.url, files_url=files_backend.url)
    with uvicorn_gateway(env) as url:
        yield Gateway(url)


@pytest.fixture(scope="module")
def database(test_env):
    """A superuser's view of the run's database, to see what every schema still holds."""
    engine = create_engine(test_env.service_url("auth").replace("dockyard_auth@", "postgres@"))
    yield engine
    engine.dispose()


class Probe:
    """A queue of our own bound to one routing key of the run's events exchange."""

    def __init__(self, amqp_url: str, exchange: str, routing_key: str) -> None:
        self.connection = connect(amqp_url, name="test-probe")
        self.channel = self.connection.channel()
        self.queue, _, _ = self.channel.queue_declare("", exclusive=True)
        self.channel.queue_bind(self.queue, exchange, routing_key)
        self.seen: list[str] = []

    def user_ids(self) -> list[str]:
        """The user ids of every event received so far."""
        while (message := self.channel.basic_get(self.queue, no_ack=True)) is not None:
            self.seen.append(json.loads(message.body)["payload"]["user_id"])
        return self.seen


@pytest.fixture(scope="module")
def user_deleted(test_env, deletion_processes) -> Iterator[Probe]:
    """Every auth.UserDeleted published during the module."""
    topology = Topology(test_env.namespace)
    probe = Probe(test_env.amqp_url, topology.events_exchange, "auth.UserDeleted")
    yield probe
    close_quietly(probe.connection)


def _count(database, sql: str, user_id: str) -> int:
    with database.connect() as conn:
        return conn.scalar(text(sql), {"u": user_id})


def _saga(database, user_id: str):
    with database.connect() as conn:
        return conn.execute(
            text("SELECT state, step, reason FROM auth.sagas WHERE subject = :u"), {"u": user_id}
        ).one_or_none()


def _history(database, user_id: str) -> list[dict]:
    with database.connect() as conn:
        return conn.scalar(
            text("SELECT history FROM auth.sagas WHERE subject = :u"), {"u": user_id}
        )


def _user_with_a_file_and_a_running_task(gateway: Gateway) -> tuple[Account, str, str, str]:
    email = unique_email("deleted")
    body = gateway(REGISTER, {"e": email, "p": PASSWORD})
    payload = body["data"]["register"]
    user = Account(id=payload["user"]["id"], token=payload["accessToken"])
    rules = [{"event": "TASK_FAILED", "channels": ["LOG", "EMAIL"]}]
    assert "errors" not in gateway(RULES, {"rules": rules}, token=user.token)
    upload(gateway, user, b"my notes\n")
    # A task that fails at once: its notification is among what the deletion must remove.
    failing = gateway(
        CREATE, {"input": {"image": TEST_IMAGE, "command": ["false"]}}, token=user.token
    )
    failing_id = failing["data"]["createTask"]["id"]
    created = gateway(
        CREATE,
        {"input": {"image": TEST_IMAGE, "command": ["sh", "-c", "sleep 300"], "name": "long"}},
        token=user.token,
    )
    task_id = created["data"]["createTask"]["id"]
    wait_for(
        lambda: (
            gateway(STATUS, {"id": task_id}, token=user.token)["data"]["task"]["status"]
            == "RUNNING"
        ),
        timeout=60,
        message="the task never ran",
    )
    wait_for(
        lambda: any(
            n["node"]["subjectId"] == failing_id
            for n in gateway(NOTIFICATIONS, token=user.token)["data"]["notifications"]["edges"]
        ),
        timeout=60,
        message="the failed task was not notified",
    )
    return user, email, task_id, payload["accessToken"]


def _nothing_left(database, files_backend, docker_client, user_id: str, keys: list[str]) -> None:  # noqa: F811
    assert _count(database, "SELECT count(*) FROM auth.users WHERE id = :u", user_id) == 0
    assert _count(database, "SELECT count(*) FROM files.files WHERE owner_id = :u", user_id) == 0
    assert _count(database, "SELECT count(*) FROM tasks.tasks WHERE owner_id = :u", user_id) == 0
    for table in ("notifications", "notification_rules", "webhooks"):
        sql = f"SELECT count(*) FROM tasks.{table} WHERE owner_id = :u"
        assert _count(database, sql, user_id) == 0, table
    assert not [key for key in keys if files_backend.holds(key)]
    assert not _containers_of(docker_client, user_id)


def _containers_of(docker_client, user_id: str) -> list:  # noqa: F811
    containers = docker_client.containers.list(
        all=True, filters=namespace_filter(os.environ["DOCKYARD_NAMESPACE"])
    )
    return [c for c in containers if c.labels.get(LABEL_OWNER) == user_id]


def _stored_keys(database, user_id: str) -> list[str]:
    with database.connect() as conn:
        return list(
            conn.scalars(
                text("SELECT storage_key FROM files.files WHERE owner_id = :u"), {"u": user_id}
            )
        )


def _succeeded(database, user_id: str, timeout: float = 90) -> None:
    wait_for(
        lambda: (_saga(database, user_id) or (None,))[0] == "SUCCEEDED",
        timeout=timeout,
        message=f"the saga did not succeed: {_saga(database, user_id)}",
    )


def test_delete_account_needs_the_right_password(gateway):
    body = gateway(REGISTER, {"e": unique_email("pw"), "p": PASSWORD})
    token = body["data"]["register"]["accessToken"]
    for password in (None, "not my password"):
        answer = gateway(DELETE, {"p": password}, token=token)
        (error,) = answer["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert set(error["extensions"]["fields"]) == {"password"}
    assert "errors" not in gateway(ME, token=token)
    assert codes(gateway(DELETE, {"p": PASSWORD})) == ["UNAUTHENTICATED"]


def test_deleting_an_account_locks_the_user_out_and_removes_everything(
    gateway,
    user_deleted,
    database,
    files_backend,
    docker_client,  # noqa: F811
):
    user, email, task_id, token = _user_with_a_file_and_a_running_task(gateway)
    keys = _stored_keys(database, user.id)
    assert keys and all(files_backend.holds(key) for key in keys)
    assert _containers_of(docker_client, user.id)
    assert gateway(DELETE, {"p": PASSWORD}, token=token) == {"data": {"deleteAccount": True}}
    assert codes(gateway(LOGIN, {"e": email, "p": PASSWORD})) == ["UNAUTHENTICATED"]
    wait_for(
        lambda: codes(gateway(ME, token=token)) == ["UNAUTHENTICATED"],
        timeout=2,
        message="the token still works",
    )

    _succeeded(database, user.id)
    _nothing_left(database, files_backend, docker_client, user.id, keys)
    wait_for(
        lambda: user.id in user_deleted.user_ids(),
        timeout=10,
        message="auth.UserDeleted was not published",
    )


@pytest.mark.parametrize("participant", ["files consumer", "tasks consumer"])
def test_a_participant_killed_mid_saga_catches_up_when_it_comes_back(
    participant,
    gateway,
    database,
    deletion_processes,
    files_backend,
    docker_client,  # noqa: F811
):
    user, _email, _task_id, token = _user_with_a_file_and_a_running_task(gateway)
    keys = _stored_keys(database, user.id)
    consumer = deletion_processes[participant]
    consumer.kill()
    try:
        assert gateway(DELETE, {"p": PASSWORD}, token=token) == {"data": {"deleteAccount": True}}
        # The sweep asks again once the 2 s step times out while the participant is away.
        deadline = time.monotonic() + 30
        while "timed out" not in [entry["what"] for entry in _history(database, user.id)]:
            assert time.monotonic() < deadline, _history(database, user.id)
            time.sleep(0.5)
        state, step, _reason = _saga(database, user.id)
        assert (state, step) == ("RUNNING", "purge_participants")
        assert _count(database, "SELECT count(*) FROM auth.users WHERE id = :u", user.id) == 1
    finally:
        consumer.start()
    _succeeded(database, user.id)
    _nothing_left(database, files_backend, docker_client, user.id, keys)


def test_the_sagas_are_listed_by_the_command(gateway, database):
    import subprocess

    command = subprocess.run(
        [str(BIN / "dockyard"), "sagas", "list", "--state", "SUCCEEDED"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert command.returncode == 0, command.stderr
    listed = command.stdout
    assert "account_deletion" in listed
    assert uuid.UUID(listed.split()[0])
