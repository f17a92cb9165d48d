"""The example plugin package's `jsonl` channel delivers what a user's rule sends to LOG."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from services.tasks.config import TasksSettings
from services.tasks.models import NotificationDelivery
from services.tasks.notifications.delivery import Channels, deliver_notification
from services.tasks.notifications.history import record_notification
from services.tasks.notifications.webhooks import WebhookPolicy
from shared.events import Envelope
from shared.mail import SmtpSettings
from shared.notifications import notifier_from_settings


def succeeded(owner_id: str) -> Envelope:
    """A TaskSucceeded event as the consumer hands it over."""
    task_id = str(uuid.uuid4())
    return Envelope(
        id=str(uuid.uuid4()),
        type="TaskSucceeded",
        version=1,
        source="tasks",
        occurred_at=datetime.now(UTC).isoformat(),
        aggregate_type="task",
        aggregate_id=task_id,
        sequence=1,
        correlation_id=None,
        payload={"owner_id": owner_id, "task_id": task_id, "name": "nightly"},
    )


def test_a_rule_naming_log_delivers_through_the_operators_plugin_channel(
    tasks_app, client, alice, tmp_path, monkeypatch
):
    target = tmp_path / "notifications.jsonl"
    monkeypatch.setenv("DOCKYARD_EXAMPLE_JSONL_PATH", str(target))
    response = client.put(
        "/v1/notification-settings",
        json={"rules": [{"event": "TASK_SUCCEEDED", "channels": ["LOG"]}]},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.json
    uow = tasks_app.extensions["tasks"].uow
    with uow() as unit:
        notification_id = record_notification(unit.session, succeeded(alice.id))
        unit.commit()
    table = NotificationDelivery.__table__
    with uow() as unit:
        (delivery,) = unit.session.execute(
            select(table).where(table.c.notification_id == notification_id)
        ).all()
    # The operator switched the example channel on next to the log, as the worker reads it.
    notifier = notifier_from_settings(TasksSettings(NOTIFICATION_CHANNELS=["log", "jsonl"]))
    channels = Channels(
        notifier=notifier,
        smtp=SmtpSettings("127.0.0.1", 1, "", "", False, 10, "Dockyard <n@dockyard.test>"),
        webhook_policy=WebhookPolicy(allow_private=True, timeout=5, disable_after=3),
    )
    outcome = deliver_notification(
        uow(), delivery_id=delivery.id, channels=channels, max_attempts=3
    )
    assert outcome.result == "delivered"
    (line,) = target.read_text().splitlines()
    written = json.loads(line)
    assert (written["user_id"], written["status"]) == (alice.id, "SUCCEEDED")
    assert written["subject_name"] == "nightly"
    page = client.get("/v1/notifications", headers=alice.headers).json
    (node,) = (e["node"] for e in page["edges"] if e["node"]["id"] == str(notification_id))
    assert [(d["channel"], d["status"]) for d in node["deliveries"]] == [("LOG", "DELIVERED")]
