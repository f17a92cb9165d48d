"""Issue 12's "done when", end to end: a task run through the gateway reaches its owner by a
signed webhook and by mail, each accepted exactly once, although the tasks Celery worker is
SIGKILLed while both are being sent.

Real processes: auth's relay (the tasks service learns the address from auth.UserRegistered);
tasks' relay, consumer, launcher, Celery worker and monitor (a container on the Docker engine);
the auth and tasks REST services; a gateway under uvicorn; an HTTP receiver on loopback that
verifies signatures and de-duplicates by idempotency key, as a user's would; an SMTP server
(aiosmtpd) on loopback.

"Exactly once" is what the receivers end up with: the killed worker's sends never got an
answer (the webhook's request is held open, the mail is held in DATA and then deferred), so
the job comes back and sends again with the same idempotency key. The receiver accepts one
delivery per key; the mailbox keeps one message, whose Message-ID carries the key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from services.auth.tests.mailbox import restart
from services.tasks.app import create_app as create_tasks_app
from services.tasks.config import TasksSettings
from services.tasks.models import users
from services.tasks.notifications.history import idempotency_key_of
from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixture
    TEST_IMAGE,
    docker_client,
    running_engine,
    wait_for,
)
from services.tasks.tests.webhook_receiver import Receiver, start_receiver
from shared.testing import ServerThread
from tests.conftest import PASSWORD, gateway_env, jwks_url, relay, unique_email, uvicorn_gateway
from tests.gateway_clients import Account, Gateway

REGISTER = (
    "mutation ($e: String!, $p: String!) "
    "{ register(email: $e, password: $p) { accessToken user { id } } }"
)
RULES = (
    "mutation ($rules: [NotificationRuleInput!]!) "
    "{ updateNotificationSettings(rules: $rules) { event channels } }"
)
CREATE_WEBHOOK = (
    "mutation ($url: String!, $events: [NotificationEvent!]!) "
    "{ createWebhook(url: $url, events: $events) { webhook { id url events } secret } }"
)
CREATE_TASK = "mutation ($input: CreateTaskInput!) { createTask(input: $input) { id } }"
TASK = "query ($id: ID!) { task(id: $id) { status exitCode } }"
NOTIFICATIONS = """
{
  notifications {
    edges {
      node {
        id event subject subjectId
        deliveries { channel status attempts lastError responseStatus idempotencyKey deliveredAt }
      }
    }
  }
}
"""
#: Long enough that neither held send times out before the kill, on a loaded machine.
SEND_TIMEOUTS = {"TASKS_WEBHOOK_TIMEOUT_SECONDS": "300", "TASKS_SMTP_TIMEOUT_SECONDS": "300"}


@pytest.fixture(scope="module")
def hooks_tasks_app(auth_server):
    """A tasks service that lets webhooks point at loopback (the receiver's address)."""
    app = create_tasks_app(
        TasksSettings(JWKS_URL=jwks_url(auth_server.url), WEBHOOK_ALLOW_PRIVATE=True)
    )
    yield app
    app.extensions["tasks"].database.dispose()


@pytest.fixture(scope="module")
def engine(test_env, auth_server, docker_client, smtp):  # noqa: F811
    """auth's relay and the tasks engine processes, mailing through the module's SMTP server."""
    with (
        relay("auth"),
        running_engine(
            test_env,
            auth_server,
            docker_client,
            TASKS_SMTP_HOST="127.0.0.1",
            TASKS_SMTP_PORT=str(smtp.port),
            **SEND_TIMEOUTS,
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def gateway(auth_server, hooks_tasks_app, engine) -> Iterator[Gateway]:
    """A gateway under uvicorn in front of auth and this module's tasks service."""
    with ServerThread(hooks_tasks_app) as tasks_server:
        with uvicorn_gateway(gateway_env(auth_server.url, tasks_url=tasks_server.url)) as url:
            yield Gateway(url)


def _ok(body: dict) -> dict:
    assert "errors" not in body, body
    return body["data"]


def _known_to_tasks(hooks_tasks_app, user_id: str) -> str | None:
    """The address the tasks service's users replica holds for the user (None before it)."""
    with hooks_tasks_app.extensions["tasks"].uow() as unit:
        return unit.session.scalar(select(users.c.email).where(users.c.id == uuid.UUID(user_id)))


def _notification(gateway: Gateway, user: Account, task_id: str) -> dict | None:
    edges = _ok(gateway(NOTIFICATIONS, token=user.token))["notifications"]["edges"]
    nodes = [edge["node"] for edge in edges if edge["node"]["subjectId"] == task_id]
    assert len(nodes) <= 1, nodes
    return nodes[0] if nodes else None


def test_a_webhook_and_a_mail_arrive_signed_and_once_though_the_worker_dies_mid_send(
    gateway, engine, smtp, hooks_tasks_app
):
    email = unique_email("notified")
    registered = _ok(gateway(REGISTER, {"e": email, "p": PASSWORD}))["register"]
    user = Account(id=registered["user"]["id"], token=registered["accessToken"])
    rules = [{"event": "TASK_SUCCEEDED", "channels": ["EMAIL", "WEBHOOK"]}]
    every_rule = _ok(gateway(RULES, {"rules": rules}, token=user.token))
    assert rules[0] in every_rule["updateNotificationSettings"]

    # The receiver holds the first POST open, the mailbox the first message's DATA: both sends
    # are in flight when the worker is killed.
    receiver = Receiver(hold_first=True, hold_seconds=300)
    server = start_receiver(receiver)
    smtp.mailbox.holding = True
    try:
        created = _ok(
            gateway(
                CREATE_WEBHOOK,
                {"url": receiver.url, "events": ["TASK_SUCCEEDED"]},
                token=user.token,
            )
        )["createWebhook"]
        receiver.secret = created["secret"]
        assert created["secret"].startswith("whsec_")
        webhook_id = created["webhook"]["id"]
        # Mail goes to the address the tasks service learned from auth.UserRegistered.
        wait_for(
            lambda: _known_to_tasks(hooks_tasks_app, user.id) == email,
            timeout=60,
            message="the tasks service never learned the user's address",
        )

        task_input = {"image": TEST_IMAGE, "command": ["sh", "-c", "echo done"], "name": "report"}
        task = _ok(gateway(CREATE_TASK, {"input": task_input}, token=user.token))["createTask"]
        task_id = task["id"]

        worker = engine["worker"]
        wait_for(
            lambda: receiver.holding.is_set() and smtp.mailbox.held >= 1,
            timeout=180,
            message=f"the sends never started: {worker.log()[-3000:]}",
        )
        worker.kill()  # SIGKILL, pool and all: neither send was answered
        receiver.release.set()
        smtp.mailbox.holding = False
        restart(worker)

        def delivered() -> dict | None:
            node = _notification(gateway, user, task_id)
            deliveries = node["deliveries"] if node else []
            done = len(deliveries) == 2 and all(d["status"] == "DELIVERED" for d in deliveries)
            return node if done else None

        notification = wait_for(delivered, timeout=180, message=worker.log()[-3000:])
    finally:
        receiver.release.set()
        smtp.mailbox.holding = False
        server.shutdown()

    assert _ok(gateway(TASK, {"id": task_id}, token=user.token))["task"] == {
        "status": "SUCCEEDED",
        "exitCode": 0,
    }
    assert (notification["event"], notification["subject"]) == (
        "TASK_SUCCEEDED",
        "Task report succeeded",
    )
    by_channel = {d["channel"]: d for d in notification["deliveries"]}
    webhook_key = idempotency_key_of(uuid.UUID(notification["id"]), "WEBHOOK", webhook_id)
    mail_key = idempotency_key_of(uuid.UUID(notification["id"]), "EMAIL")
    assert by_channel["WEBHOOK"]["idempotencyKey"] == webhook_key
    assert by_channel["EMAIL"]["idempotencyKey"] == mail_key
    # The killed worker's tries died with its transaction: one recorded try each.
    assert [by_channel[c]["attempts"] for c in ("EMAIL", "WEBHOOK")] == [1, 1]
    assert by_channel["WEBHOOK"]["responseStatus"] == 200
    assert all(d["lastError"] is None and d["deliveredAt"] for d in by_channel.values())

    # The webhook: sent twice (the killed try, then the re-send), with the same key, both signed
    # over the raw body; the receiver accepted one delivery.
    assert len(receiver.received) == 2
    assert all(post.signed for post in receiver.received)
    assert receiver.keys() == [webhook_key, webhook_key]
    assert receiver.accepted == [webhook_key]
    assert {post.headers["Dockyard-Event"] for post in receiver.received} == {"TASK_SUCCEEDED"}
    bodies = [json.loads(post.body) for post in receiver.received]
    assert {(b["id"], b["subjectId"]) for b in bodies} == {(notification["id"], task_id)}

    # The mail: held in DATA when the worker died (and deferred, so not kept), then sent again;
    # the mailbox holds exactly one, carrying the key.
    assert smtp.mailbox.held == 1
    (mail,) = smtp.mailbox.to(email)
    assert mail["Message-ID"].strip().startswith(f"<{mail_key}.notification@")
    assert mail["Dockyard-Idempotency-Key"] == mail_key
    assert mail["Subject"] == "[Dockyard] Task report succeeded"
    assert len(smtp.mailbox.messages) == 1
