"""A task's owner hears how it ended, from a real Celery worker, even through a failing channel,
and through every channel of their rule: log, a signed webhook and a mail."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from celery import Celery

from services.tasks.config import TasksSettings
from services.tasks.dispatch import NOTIFY
from services.tasks.models import users
from services.tasks.tests.engine.conftest import (
    Process,
    engine_env,
    wait_for,
    worker_argv,
)
from services.tasks.tests.engine.test_execution import submit, wait_status
from services.tasks.tests.webhook_receiver import Receiver, start_receiver
from shared.celery import celery_config
from shared.events import Envelope
from shared.user_replica import apply_user_event


def test_a_nameless_failed_task_is_announced_to_its_owner_by_its_id(client, alice, engine):
    task = submit(client, alice, ["false"])
    assert wait_status(client, alice, task["id"])["status"] == "FAILED"
    line = f"Notification sent to user {alice.id} about task {task['id']}: FAILED"
    # The default LOG channel is inline: the consumer that records the notification sends it.
    wait_for(
        lambda: line in engine["consume"].log(),
        timeout=15,
        message=f"no {line!r} in the consumer's log",
    )
    assert engine["consume"].log().count(line) == 1
    assert line not in engine["worker"].log()


def test_a_notification_whose_channel_fails_is_retried_with_backoff_until_delivered(
    test_env, auth_server, tmp_path
):
    # A namespace of its own: the suite's worker must not take this worker's jobs.
    namespace = f"{test_env.namespace}notify"
    env = engine_env(
        test_env,
        auth_server,
        DOCKYARD_NAMESPACE=namespace,
        NOTIFICATION_CHANNELS="flaky,log",
        TASKS_NOTIFY_RETRY_BACKOFF_SECONDS="1",
        TASKS_NOTIFY_RETRY_BACKOFF_MAX_SECONDS="2",
        FLAKY_COUNTER=str(tmp_path / "sends"),
        FLAKY_FAILURES="2",
    )
    argv = worker_argv(1)
    argv[argv.index("services.tasks.worker:celery_app")] = (
        "services.tasks.tests.engine.flaky_worker:celery_app"
    )
    worker = Process("flaky-worker", argv, env, tmp_path / "flaky-worker.log").start()
    try:
        wait_for(lambda: "ready." in worker.log(), timeout=30, message=worker.log()[-2000:])
        user_id = str(uuid.uuid4())
        sender = Celery("notify-sender")
        sender.config_from_object(celery_config(TasksSettings(NAMESPACE=namespace)))
        sender.send_task(
            NOTIFY, kwargs={"user_id": user_id, "task_label": "nightly", "status": "TIMED_OUT"}
        )
        line = f"Notification sent to user {user_id} about task nightly: TIMED_OUT"
        wait_for(lambda: line in worker.log(), timeout=20, message=worker.log()[-3000:])
        log = worker.log()
        assert log.count(line) == 1
        assert log.count("flaky channel: send") >= 2
        assert log.count("Retry in") == 2, log[-3000:]
        assert (tmp_path / "sends").read_text() == "3"
    finally:
        worker.stop()


def test_a_failed_task_reaches_its_owner_by_signed_webhook_and_by_mail_once(
    client, make_app, tasks_app, alice, engine, engine_smtp
):
    uow = tasks_app.extensions["tasks"].uow
    # The replica learns the address from auth.UserRegistered; auth's relay is not part of the
    # engine under test, so the event is applied as the tasks.users consumer would.
    registered = Envelope(
        id=str(uuid.uuid4()),
        type="UserRegistered",
        version=1,
        source="auth",
        occurred_at=datetime.now(UTC).isoformat(),
        aggregate_type="user",
        aggregate_id=alice.id,
        sequence=1,
        correlation_id=None,
        payload={"user_id": alice.id, "email": alice.email},
    )
    with uow() as unit:
        apply_user_event(unit.session, users, registered)
        unit.commit()
    receiver = Receiver()
    server = start_receiver(receiver)
    try:
        rules = {"rules": [{"event": "TASK_FAILED", "channels": ["LOG", "EMAIL", "WEBHOOK"]}]}
        response = client.put("/v1/notification-settings", json=rules, headers=alice.headers)
        assert response.status_code == 200, response.json
        created = (
            make_app(WEBHOOK_ALLOW_PRIVATE=True)
            .test_client()
            .post(
                "/v1/webhooks",
                json={"url": receiver.url, "events": ["TASK_FAILED"]},
                headers=alice.headers,
            )
        )
        assert created.status_code == 201, created.json
        receiver.secret = created.json["secret"]

        task = submit(client, alice, ["false"], name="nightly-report")
        assert wait_status(client, alice, task["id"])["status"] == "FAILED"

        def delivered():
            page = client.get("/v1/notifications", headers=alice.headers).json
            nodes = [e["node"] for e in page["edges"] if e["node"]["subject_id"] == task["id"]]
            return (
                nodes and all(d["status"] == "DELIVERED" for d in nodes[0]["deliveries"]) and nodes
            )

        (notification,) = wait_for(delivered, timeout=60, message=engine["worker"].log()[-3000:])
        assert notification["subject"] == "Task nightly-report failed"
        assert sorted(d["channel"] for d in notification["deliveries"]) == [
            "EMAIL",
            "LOG",
            "WEBHOOK",
        ]
        (post,) = receiver.received
        assert post.signed
        assert json.loads(post.body)["subjectId"] == task["id"]
        (mail,) = engine_smtp.mailbox.wait_for(alice.email)
        assert mail["Subject"] == "[Dockyard] Task nightly-report failed"
    finally:
        server.shutdown()
