"""Files and tasks keep their users from auth's events, and serve a user whose event is late.

Through the gateway, with the real auth relay and the real `dockyard consume` processes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import amqp
import pytest
from sqlalchemy import select, text

from services.files.models import users as files_users
from services.tasks.models import users as tasks_users
from shared.db import add_events, make_engine, session_factory
from shared.events import Event
from shared.messaging.broker import close_quietly, connect
from shared.messaging.dlq import list_dead_letters
from shared.messaging.topology import Topology
from tests.conftest import BIN, PASSWORD, background, relay
from tests.gateway_clients import Account, Gateway, codes, upload

CREATE_TASK = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id status } }"
FILES = "query { files { totalCount } }"
TASKS = "query { tasks { totalCount } }"
LOGIN = "mutation ($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
LOGOUT = "mutation { logout }"
REQUEST_VERIFICATION = "mutation { requestEmailVerification }"
REQUEST_RESET = "mutation ($e: String!) { requestPasswordReset(email: $e) }"
REGISTER = (
    "mutation ($e: String!, $p: String!) "
    "{ register(email: $e, password: $p) { accessToken user { id } } }"
)


@dataclass(frozen=True)
class UserDeleted(Event):
    """auth.UserDeleted as the account deletion saga publishes it (its payload names the user)."""

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str


def wait_until(condition, *, timeout: float = 30, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def queue_exists(amqp_url: str, queue: str) -> bool:
    """Whether `queue` has been declared."""
    connection = connect(amqp_url, name="test-read-models")
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except amqp.exceptions.NotFound:
        return False
    finally:
        close_quietly(connection)


@pytest.fixture(scope="module")
def engines(test_env):
    """Engines on the auth, files and tasks schemas."""
    made = {
        name: make_engine(test_env.service_url(name), schema=name, pool_size=2)
        for name in ("auth", "files", "tasks")
    }
    yield made
    for engine in made.values():
        engine.dispose()


@pytest.fixture(scope="module")
def auth_relay(test_env) -> Iterator[None]:
    """`dockyard relay auth`: auth's events reach the broker."""
    with relay("auth"):
        yield


@pytest.fixture(scope="module")
def gateway(served_gateway, auth_relay) -> Gateway:
    """A client of the served gateway in front of the session's auth, files and tasks."""
    return Gateway(served_gateway)


@contextmanager
def consumers(test_env) -> Iterator[None]:
    """`dockyard consume auth|files|tasks`, once each has declared its queues."""
    topology = Topology(test_env.namespace)
    argv = [str(BIN / "dockyard"), "consume"]
    with (
        background("the auth consumer", [*argv, "auth"]),
        background("the files consumer", [*argv, "files"]),
        background("the tasks consumer", [*argv, "tasks"]),
    ):
        for queue in ("auth.revocation-list", "files.users", "tasks.users"):
            wait_until(
                lambda q=queue: queue_exists(test_env.amqp_url, topology.consumer_queue(q)),
                what=f"the {queue} queue",
            )
        yield


def replica(engines, user_id: str) -> dict[str, object]:
    """Each service's replica row of the user (None where there is none)."""
    rows = {}
    for service, table in (("files", files_users), ("tasks", tasks_users)):
        with engines[service].connect() as connection:
            rows[service] = connection.execute(
                select(table).where(table.c.id == uuid.UUID(user_id))
            ).one_or_none()
    return rows


def sign_up(gateway: Gateway) -> tuple[Account, str]:
    """Register a fresh user through the gateway; the account and its email."""
    email = f"replica-{uuid.uuid4().hex[:12]}@example.com"
    payload = gateway(REGISTER, {"e": email, "p": PASSWORD})["data"]["register"]
    return Account(id=payload["user"]["id"], token=payload["accessToken"]), email


def create_task(gateway: Gateway, account: Account) -> dict:
    """createTask through the gateway; the whole response body."""
    task_input = {"image": "busybox:1.36", "command": ["echo", "hi"]}
    return gateway(CREATE_TASK, {"input": task_input}, token=account.token)


def test_a_user_whose_registration_has_not_arrived_is_served_and_the_event_confirms_them(
    test_env, gateway, engines
):
    with consumers(test_env):
        pass  # the queues now exist, so UserRegistered waits in them while nobody consumes

    account, _email = sign_up(gateway)
    uploaded = upload(gateway, account)
    created = create_task(gateway, account)
    assert "errors" not in created, created
    assert uploaded["status"] == "UPLOADED"
    assert created["data"]["createTask"]["status"] == "PENDING"

    early = replica(engines, account.id)
    assert all(row is not None and row.registered_at is None for row in early.values()), early

    with consumers(test_env):
        wait_until(
            lambda: all(row and row.registered_at for row in replica(engines, account.id).values()),
            what="both replicas to record the registration",
        )
    late = replica(engines, account.id)
    for service, row in late.items():
        assert row.deleted_at is None
        assert row.first_seen_at == early[service].first_seen_at
    assert gateway(FILES, token=account.token)["data"]["files"]["totalCount"] == 1
    assert gateway(TASKS, token=account.token)["data"]["tasks"]["totalCount"] == 1


def test_a_deleted_user_is_refused_by_files_and_tasks_even_with_a_valid_token(
    test_env, gateway, engines
):
    with consumers(test_env):
        account, _email = sign_up(gateway)
        upload(gateway, account)
        wait_until(
            lambda: all(row and row.registered_at for row in replica(engines, account.id).values()),
            what="both replicas to record the registration",
        )
        with session_factory(engines["auth"])() as session, session.begin():
            add_events(session, [UserDeleted(user_id=account.id)], source="auth", schema="auth")
        wait_until(
            lambda: all(row and row.deleted_at for row in replica(engines, account.id).values()),
            what="both replicas to record the deletion",
        )

    # Auth never revoked this token: the replicas alone refuse it (after the gates' short cache).
    wait_until(
        lambda: codes(gateway(FILES, token=account.token)) == ["UNAUTHENTICATED"],
        timeout=15,
        what="files to refuse the deleted user",
    )
    # Each service's gate caches a live user on its own clock: wait for tasks' too.
    wait_until(
        lambda: codes(gateway(TASKS, token=account.token)) == ["UNAUTHENTICATED"],
        timeout=15,
        what="tasks to refuse the deleted user",
    )
    assert codes(create_task(gateway, account)) == ["UNAUTHENTICATED"]
    response = gateway.upload(b"after deletion", token=account.token)
    assert codes(response.json()) == ["UNAUTHENTICATED"]


def test_auth_events_of_a_users_routine_find_a_subscriber_and_none_is_unroutable(
    test_env, gateway, engines
):
    with consumers(test_env):
        account, email = sign_up(gateway)
        token = gateway(LOGIN, {"e": email, "p": PASSWORD})["data"]["login"]["accessToken"]
        assert gateway(REQUEST_VERIFICATION, token=token)["data"]["requestEmailVerification"]
        assert gateway(REQUEST_RESET, {"e": email})["data"]["requestPasswordReset"]
        assert gateway(LOGOUT, token=token)["data"]["logout"]
        # Routing happens as the broker accepts a publish: once auth's outbox is empty, every
        # event of this user has been routed to its subscribers or to the unroutable queue.
        with engines["auth"].connect() as connection:
            outbox = text("SELECT count(*) FROM auth.outbox")
            wait_until(
                lambda: connection.execute(outbox).scalar() == 0, what="auth's outbox to drain"
            )

    unroutable = list_dead_letters(
        test_env.amqp_url, Topology(test_env.namespace).unroutable_queue, limit=10_000
    )
    ours = [
        letter.routing_key
        for letter in unroutable
        if account.id in letter.body or email in letter.body
    ]
    assert ours == []
