"""A webhook delivery whose Celery worker is SIGKILLed mid-send is sent again by the next worker
with the same idempotency key: the receiver accepts it exactly once, and nothing is lost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from celery import Celery
from sqlalchemy import select

from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from services.tasks.dispatch import DELIVER_NOTIFICATION
from services.tasks.models import NotificationDelivery
from services.tasks.notifications import rules, webhooks
from services.tasks.notifications.history import record_notification
from services.tasks.tests.engine.conftest import (
    Process,
    engine_env,
    own_environment,
    wait_for,
    worker_argv,
)
from services.tasks.tests.webhook_receiver import Receiver, start_receiver
from shared.celery import celery_config
from shared.events import Envelope
from shared.testing import TestEnvironment


def _deliveries(uow, notification_id) -> dict[str, tuple]:
    table = NotificationDelivery.__table__
    with uow() as unit:
        rows = unit.session.execute(
            select(table).where(table.c.notification_id == notification_id)
        ).all()
    return {row.channel: row for row in rows}


@pytest.fixture(scope="module")
def hook_env() -> Iterator[TestEnvironment]:
    """A database and namespace of this module's own: the package's engine (its relay, consumer
    and worker) must not see this module's notifications or take its jobs."""
    with own_environment() as environment:
        yield environment


def test_a_worker_killed_mid_send_leaves_one_accepted_delivery_per_key(
    hook_env, auth_server, tmp_path
):
    env = engine_env(hook_env, auth_server, TASKS_WEBHOOK_TIMEOUT_SECONDS="60")
    app = create_app(TasksSettings(env))
    uow = app.extensions["tasks"].uow
    receiver = Receiver(hold_first=True)
    server = start_receiver(receiver)
    namespace = hook_env.namespace
    first = Process("hook-worker-1", worker_argv(1), env, tmp_path / "worker-1.log").start()
    second = None
    try:
        owner_id = uuid.uuid4()
        rules.update_rules(
            uow(), owner_id=owner_id, rules=[{"event": "TASK_FAILED", "channels": ["WEBHOOK"]}]
        )
        _, receiver.secret = webhooks.create_webhook(
            uow(),
            policy=webhooks.WebhookPolicy(allow_private=True),
            owner_id=owner_id,
            url=receiver.url,
            events=["TASK_FAILED"],
        )
        task_id = str(uuid.uuid4())
        event = Envelope(
            id=str(uuid.uuid4()),
            type="TaskFailed",
            version=1,
            source="tasks",
            occurred_at=datetime.now(UTC).isoformat(),
            aggregate_type="task",
            aggregate_id=task_id,
            sequence=1,
            correlation_id=None,
            payload={"task_id": task_id, "owner_id": str(owner_id), "name": "nightly"},
        )
        with uow() as unit:
            notification_id = record_notification(unit.session, event)
            unit.commit()
        delivery = _deliveries(uow, notification_id)["WEBHOOK"]
        wait_for(lambda: "ready." in first.log(), timeout=30, message=first.log()[-2000:])
        sender = Celery("hook-sender")
        sender.config_from_object(celery_config(TasksSettings(NAMESPACE=namespace)))
        sender.send_task(DELIVER_NOTIFICATION, args=[str(delivery.id)])

        assert receiver.holding.wait(30), first.log()[-3000:]
        first.kill()  # mid-send: the receiver has the request and has not answered
        receiver.release.set()
        second = Process("hook-worker-2", worker_argv(1), env, tmp_path / "worker-2.log").start()
        wait_for(
            lambda: _deliveries(uow, notification_id)["WEBHOOK"].status == "DELIVERED",
            timeout=60,
            message=second.log()[-3000:],
        )
        assert len(receiver.received) == 2
        assert all(post.signed for post in receiver.received)
        assert receiver.keys() == [delivery.idempotency_key] * 2
        assert receiver.accepted == [delivery.idempotency_key]
        stored = _deliveries(uow, notification_id)["WEBHOOK"]
        assert (stored.attempts, stored.response_status) == (1, 200), (
            first.log()[-3000:] + second.log()[-3000:]
        )
    finally:
        receiver.release.set()
        first.stop()
        if second is not None:
            second.stop()
        server.shutdown()
        app.extensions["tasks"].database.dispose()
