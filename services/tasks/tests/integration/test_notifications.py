"""Notifications: rules, webhooks (refused on internal addresses), a notification per event with
its deliveries, each sent once through a real HTTP receiver or a real SMTP server."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from services.auth.tests.mailbox import Mailbox, SmtpServer
from services.tasks import erasure, handlers
from services.tasks.models import Notification, NotificationDelivery, Webhook, users
from services.tasks.notifications import webhooks
from services.tasks.notifications.delivery import Channels, deliver_notification, stuck_deliveries
from services.tasks.notifications.history import record_notification
from services.tasks.tests.webhook_receiver import Receiver, start_receiver
from shared.events import Envelope
from shared.mail import SmtpSettings
from shared.notifications import FanOutNotifier, LogNotifier, is_inline
from shared.user_replica import apply_user_event

ALLOW_LOOPBACK = webhooks.WebhookPolicy(allow_private=True, timeout=5, disable_after=3)


def envelope(event_type: str, owner_id: str, *, source: str = "tasks", **payload) -> Envelope:
    """An event as the consumer hands it over."""
    subject = str(uuid.uuid4())
    defaults = {
        "TaskFailed": {"task_id": subject, "name": "nightly"},
        "TaskSucceeded": {"task_id": subject, "name": "nightly"},
        "FileProcessed": {"file_id": subject, "filename": "a.txt", "status": "PROCESSED"},
    }[event_type]
    return Envelope(
        id=str(uuid.uuid4()),
        type=event_type,
        version=1,
        source=source,
        occurred_at=datetime.now(UTC).isoformat(),
        aggregate_type="task",
        aggregate_id=subject,
        sequence=1,
        correlation_id=None,
        payload={"owner_id": owner_id, **defaults, **payload},
    )


@pytest.fixture
def uow(tasks_app):
    """A unit of work factory on the run's tasks database."""
    return tasks_app.extensions["tasks"].uow


@pytest.fixture
def receiver():
    """A real webhook receiver on loopback."""
    state = Receiver()
    server = start_receiver(state)
    yield state
    server.shutdown()


@pytest.fixture
def loopback_client(make_app):
    """A test client of a tasks app that allows webhooks on loopback (as `make up` does)."""
    return make_app(WEBHOOK_ALLOW_PRIVATE=True).test_client()


def record(uow, env: Envelope) -> uuid.UUID | None:
    """Handle the event as the consumer does, in one transaction."""
    with uow() as unit:
        notification_id = record_notification(unit.session, env)
        unit.commit()
    return notification_id


def deliveries_of(uow, notification_id) -> list:
    """The deliveries of one notification, as rows read now."""
    table = NotificationDelivery.__table__
    with uow() as unit:
        return unit.session.execute(
            select(table).where(table.c.notification_id == notification_id)
        ).all()


def channels(smtp_port: int = 1, policy: webhooks.WebhookPolicy = ALLOW_LOOPBACK) -> Channels:
    """What the worker sends with."""
    smtp = SmtpSettings("127.0.0.1", smtp_port, "", "", False, 10, "Dockyard <n@dockyard.test>")
    return Channels(notifier=LogNotifier(), smtp=smtp, webhook_policy=policy)


def set_rule(client, user, event: str, chosen: list[str]):
    """Choose the channels of one kind of event."""
    response = client.put(
        "/v1/notification-settings",
        json={"rules": [{"event": event, "channels": chosen}]},
        headers=user.headers,
    )
    assert response.status_code == 200, response.json
    return response.json["rules"]


def add_webhook(client, user, url: str, events: list[str] | None = None):
    """Create a webhook; the answer's JSON."""
    response = client.post(
        "/v1/webhooks", json={"url": url, "events": events or []}, headers=user.headers
    )
    assert response.status_code == 201, response.json
    return response.json


def test_rules_default_to_log_and_an_update_keeps_the_other_kinds(client, alice):
    rules = client.get("/v1/notification-settings", headers=alice.headers).json["rules"]
    assert {r["event"] for r in rules} == {
        "TASK_SUCCEEDED",
        "TASK_FAILED",
        "WORKFLOW_FINISHED",
        "FILE_PROCESSED",
        "FILE_FAILED",
        "SCHEDULE_MISFIRED",
    }
    assert all(r["channels"] == ["LOG"] for r in rules)
    rules = set_rule(client, alice, "TASK_FAILED", ["WEBHOOK", "EMAIL"])
    by_event = {r["event"]: r["channels"] for r in rules}
    assert by_event["TASK_FAILED"] == ["EMAIL", "WEBHOOK"]
    assert by_event["TASK_SUCCEEDED"] == ["LOG"]


def test_an_unknown_channel_or_event_is_a_400_naming_it(client, alice):
    response = client.put(
        "/v1/notification-settings",
        json={"rules": [{"event": "TASK_EXPLODED", "channels": ["SMOKE"]}]},
        headers=alice.headers,
    )
    assert response.status_code == 400
    assert "rules" in json.dumps(response.json)


def test_a_webhook_on_loopback_is_refused_unless_the_operator_allows_it(
    client, loopback_client, alice
):
    response = client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": []}, headers=alice.headers
    )
    assert response.status_code == 400
    assert "not a public host" in response.json["message"]
    created = add_webhook(loopback_client, alice, "http://127.0.0.1:9/x", ["TASK_FAILED"])
    assert created["secret"].startswith("whsec_")
    listed = client.get("/v1/webhooks", headers=alice.headers).json["webhooks"]
    assert [w["id"] for w in listed] == [created["webhook"]["id"]]
    assert "secret" not in json.dumps(listed)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
        "http://0x7f.1/hook",
        "http://intranet.example/hook",
    ],
)
def test_private_link_local_and_loopback_hosts_are_refused(url):
    def resolve(host):
        return ["10.0.0.7"]  # intranet.example resolves to a private address

    with pytest.raises(webhooks.WebhookUrlRefused, match="not a public host"):
        webhooks.check_url(url, webhooks.WebhookPolicy(), resolve=resolve)


def test_the_allowlist_admits_a_private_range_and_other_schemes_are_refused():
    policy = webhooks.WebhookPolicy(allowlist=webhooks.AddressAllowlist.parse(["10.0.0.0/8"]))
    assert str(webhooks.check_url("http://10.1.2.3/hook", policy).address) == "10.1.2.3"
    for url in ("ftp://example.com/x", "file:///etc/passwd", "http://user:pw@example.com/"):
        with pytest.raises(webhooks.WebhookUrlRefused):
            webhooks.check_url(url, policy, resolve=lambda _h: ["93.184.216.34"])


def test_someone_elses_webhook_cannot_be_deleted(loopback_client, client, alice, bob):
    created = add_webhook(loopback_client, alice, "http://127.0.0.1:9/x")
    webhook_id = created["webhook"]["id"]
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=bob.headers).status_code == 404
    assert client.get("/v1/webhooks", headers=bob.headers).json["webhooks"] == []
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=alice.headers).status_code == 204
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=alice.headers).status_code == 404


def test_an_event_notifies_once_through_the_channels_of_its_kind(
    uow, client, loopback_client, alice, bob
):
    set_rule(client, alice, "TASK_FAILED", ["LOG", "WEBHOOK"])
    add_webhook(loopback_client, alice, "http://127.0.0.1:9/failed", ["TASK_FAILED"])
    add_webhook(loopback_client, alice, "http://127.0.0.1:9/files", ["FILE_PROCESSED"])
    failed = envelope("TaskFailed", alice.id)
    notification_id = record(uow, failed)
    assert record(uow, failed) is None  # the same event again: nothing new
    succeeded = record(uow, envelope("TaskSucceeded", alice.id))
    page = client.get("/v1/notifications", headers=alice.headers).json
    assert [e["node"]["id"] for e in page["edges"]] == [str(succeeded), str(notification_id)]
    newest, oldest = (e["node"] for e in page["edges"])
    assert oldest["event"] == "TASK_FAILED" and oldest["subject"] == "Task nightly failed"
    assert sorted(d["channel"] for d in oldest["deliveries"]) == ["LOG", "WEBHOOK"]
    assert {d["status"] for d in oldest["deliveries"]} == {"PENDING"}
    assert [d["channel"] for d in newest["deliveries"]] == ["LOG"]
    assert client.get("/v1/notifications", headers=bob.headers).json["edges"] == []


def test_a_webhook_delivery_is_signed_and_sent_once(uow, client, loopback_client, alice, receiver):
    set_rule(client, alice, "TASK_SUCCEEDED", ["WEBHOOK"])
    receiver.secret = add_webhook(loopback_client, alice, receiver.url)["secret"]
    notification_id = record(uow, envelope("TaskSucceeded", alice.id))
    (delivery,) = deliveries_of(uow, notification_id)
    outcome = deliver_notification(
        uow(), delivery_id=delivery.id, channels=channels(), max_attempts=3
    )
    assert outcome.result == "delivered"
    again = deliver_notification(
        uow(), delivery_id=delivery.id, channels=channels(), max_attempts=3
    )
    assert again.result == "already-delivered"
    (post,) = receiver.received
    assert post.signed
    assert post.headers["Dockyard-Idempotency-Key"] == delivery.idempotency_key
    assert post.headers["Dockyard-Event"] == "TASK_SUCCEEDED"
    body = json.loads(post.body)
    assert body["id"] == str(notification_id) and body["event"] == "TASK_SUCCEEDED"
    (stored,) = deliveries_of(uow, notification_id)
    assert (stored.status, stored.attempts, stored.response_status) == ("DELIVERED", 1, 200)


def test_a_redirect_is_not_followed(uow, client, loopback_client, alice, receiver):
    target = Receiver()
    server = start_receiver(target)
    try:
        receiver.status, receiver.location = 302, target.url
        set_rule(client, alice, "TASK_SUCCEEDED", ["WEBHOOK"])
        receiver.secret = add_webhook(loopback_client, alice, receiver.url)["secret"]
        notification_id = record(uow, envelope("TaskSucceeded", alice.id))
        (delivery,) = deliveries_of(uow, notification_id)
        outcome = deliver_notification(
            uow(), delivery_id=delivery.id, channels=channels(), max_attempts=3
        )
        assert outcome.retry
        (stored,) = deliveries_of(uow, notification_id)
        assert "redirects are not followed" in stored.last_error
        assert stored.response_status == 302 and stored.status == "PENDING"
        assert target.received == []
    finally:
        server.shutdown()


def test_a_url_checked_at_creation_is_checked_again_at_delivery(
    uow, client, loopback_client, alice, receiver
):
    set_rule(client, alice, "TASK_SUCCEEDED", ["WEBHOOK"])
    receiver.secret = add_webhook(loopback_client, alice, receiver.url)["secret"]
    notification_id = record(uow, envelope("TaskSucceeded", alice.id))
    (delivery,) = deliveries_of(uow, notification_id)
    strict = channels(policy=webhooks.WebhookPolicy(timeout=5))
    outcome = deliver_notification(uow(), delivery_id=delivery.id, channels=strict, max_attempts=3)
    assert outcome.retry
    assert "not a public host" in deliveries_of(uow, notification_id)[0].last_error
    assert receiver.received == []


def test_a_webhook_failing_too_often_is_disabled_and_its_owner_told(
    uow, client, loopback_client, alice, receiver, caplog
):
    receiver.status = 500
    set_rule(client, alice, "TASK_FAILED", ["WEBHOOK"])
    webhook_id = add_webhook(loopback_client, alice, receiver.url)["webhook"]["id"]
    for attempt in range(3):
        notification_id = record(uow, envelope("TaskFailed", alice.id))
        (delivery,) = deliveries_of(uow, notification_id)
        outcome = deliver_notification(
            uow(), delivery_id=delivery.id, channels=channels(), max_attempts=1
        )
        assert outcome.result == "failed", attempt
    assert "disabled after 3 failed deliveries in a row" in caplog.text
    with uow() as unit:
        webhook = unit.session.get(Webhook, uuid.UUID(webhook_id))
        assert not webhook.enabled and webhook.consecutive_failures == 3
        disabled = unit.session.execute(
            text(
                "SELECT count(*) FROM tasks.outbox WHERE event_type = 'WebhookDisabled' "
                "AND payload->>'webhook_id' = :id"
            ),
            {"id": webhook_id},
        ).scalar()
        assert disabled == 1
    # A disabled webhook is no longer sent to.
    assert deliveries_of(uow, record(uow, envelope("TaskFailed", alice.id))) == []
    assert len(receiver.received) == 3


def test_a_notification_mail_arrives_over_smtp_once(uow, client, alice):
    mailbox = Mailbox()
    server = SmtpServer(mailbox)
    server.start()
    try:
        with uow() as unit:
            registered = envelope("TaskSucceeded", alice.id)
            apply_user_event(
                unit.session,
                users,
                Envelope(
                    **{
                        **registered.__dict__,
                        "type": "UserRegistered",
                        "source": "auth",
                        "payload": {"user_id": alice.id, "email": alice.email},
                    }
                ),
            )
            unit.commit()
        set_rule(client, alice, "FILE_PROCESSED", ["EMAIL"])
        notification_id = record(uow, envelope("FileProcessed", alice.id, source="files"))
        (delivery,) = deliveries_of(uow, notification_id)
        sending = channels(smtp_port=server.port)
        outcome = deliver_notification(
            uow(), delivery_id=delivery.id, channels=sending, max_attempts=3
        )
        assert outcome.result == "delivered"
        assert (
            deliver_notification(
                uow(), delivery_id=delivery.id, channels=sending, max_attempts=3
            ).result
            == "already-delivered"
        )
        (mail,) = mailbox.wait_for(alice.email)
        assert mail["Subject"] == "[Dockyard] File a.txt was processed"
        assert delivery.idempotency_key in mail["Message-ID"]
    finally:
        server.stop()


def test_a_delivery_pending_too_long_is_swept_for_sending_again(uow, alice):
    notification_id = record(uow, envelope("TaskSucceeded", alice.id))
    (delivery,) = deliveries_of(uow, notification_id)
    assert str(delivery.id) not in stuck_deliveries(uow(), older_than=3600)
    with uow() as unit:
        unit.session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery.id)
            .values(updated_at=datetime.now(UTC) - timedelta(hours=2))
        )
        unit.commit()
    assert str(delivery.id) in stuck_deliveries(uow(), older_than=3600)
    assert str(delivery.id) not in stuck_deliveries(uow(), older_than=3600)


def test_account_deletion_removes_webhooks_rules_and_notifications(
    uow, client, loopback_client, alice
):
    set_rule(client, alice, "TASK_FAILED", ["WEBHOOK"])
    add_webhook(loopback_client, alice, "http://127.0.0.1:9/x")
    record(uow, envelope("TaskFailed", alice.id))
    with uow() as unit:
        erasure.erase_user_tasks(unit.session, user_id=alice.id, saga_id=str(uuid.uuid4()))
        unit.commit()
    owner = uuid.UUID(alice.id)
    with uow() as unit:
        assert unit.session.scalars(select(Webhook).where(Webhook.owner_id == owner)).all() == []
        assert (
            unit.session.scalars(select(Notification).where(Notification.owner_id == owner)).all()
            == []
        )
    rules = client.get("/v1/notification-settings", headers=alice.headers)
    assert rules.status_code == 200 and all(r["channels"] == ["LOG"] for r in rules.json["rules"])


class Broken:
    """An operator's notification channel that is down."""

    def send(self, _notification) -> None:
        """Fail."""
        raise ConnectionError("chat service unreachable")


def test_a_failing_log_channel_leaves_the_delivery_pending_for_a_retry(uow, alice):
    notification_id = record(uow, envelope("TaskSucceeded", alice.id))
    (delivery,) = deliveries_of(uow, notification_id)
    broken = Channels(notifier=Broken(), smtp=channels().smtp, webhook_policy=ALLOW_LOOPBACK)
    outcome = deliver_notification(uow(), delivery_id=delivery.id, channels=broken, max_attempts=3)
    assert outcome.retry
    (stored,) = deliveries_of(uow, notification_id)
    assert (stored.status, stored.attempts) == ("PENDING", 1)
    assert stored.last_error == "ConnectionError: chat service unreachable"
    assert (
        deliver_notification(
            uow(), delivery_id=delivery.id, channels=channels(), max_attempts=3
        ).result
        == "delivered"
    )


def created_event_of(uow, notification_id) -> dict:
    """The payload of the NotificationCreated that announced the notification."""
    with uow() as unit:
        return unit.session.execute(
            text(
                "SELECT payload FROM outbox WHERE event_type = 'NotificationCreated'"
                " AND payload->>'notification_id' = :id"
            ),
            {"id": str(notification_id)},
        ).scalar_one()


def record_inline(uow, env: Envelope, notifier) -> uuid.UUID | None:
    """Handle the event as the consumer does with an inline notifier, in one transaction."""
    with uow() as unit:
        notification_id = record_notification(unit.session, env, inline=notifier)
        unit.commit()
    return notification_id


def test_an_inline_log_channel_is_delivered_in_the_consumers_transaction(
    uow, client, loopback_client, alice, caplog
):
    set_rule(client, alice, "TASK_FAILED", ["LOG", "WEBHOOK"])
    add_webhook(loopback_client, alice, "http://127.0.0.1:9/failed")
    with caplog.at_level("INFO", logger="dockyard.notifications"):
        notification_id = record_inline(uow, envelope("TaskFailed", alice.id), LogNotifier())
    assert caplog.text.count(f"Notification sent to user {alice.id} about task nightly") == 1
    by_channel = {d.channel: d for d in deliveries_of(uow, notification_id)}
    assert (by_channel["LOG"].status, by_channel["LOG"].attempts) == ("DELIVERED", 1)
    assert by_channel["LOG"].delivered_at is not None
    assert by_channel["WEBHOOK"].status == "PENDING"
    # Only what is left to send gets a delivery job.
    assert created_event_of(uow, notification_id)["delivery_ids"] == [str(by_channel["WEBHOOK"].id)]


def test_an_inline_log_channel_that_fails_leaves_the_delivery_to_a_job(uow, alice):
    notification_id = record_inline(uow, envelope("TaskSucceeded", alice.id), Broken())
    (delivery,) = deliveries_of(uow, notification_id)
    assert (delivery.status, delivery.attempts) == ("PENDING", 0)
    assert created_event_of(uow, notification_id)["delivery_ids"] == [str(delivery.id)]


def test_only_the_built_in_log_channel_is_inline():
    assert is_inline(LogNotifier())
    assert is_inline(FanOutNotifier([LogNotifier(), LogNotifier()]))
    assert not is_inline(Broken())
    assert not is_inline(FanOutNotifier([LogNotifier(), Broken()]))


def test_a_delivery_to_a_deleted_webhook_is_skipped(uow, client, loopback_client, alice):
    set_rule(client, alice, "TASK_SUCCEEDED", ["WEBHOOK"])
    webhook_id = add_webhook(loopback_client, alice, "http://127.0.0.1:9/x")["webhook"]["id"]
    notification_id = record(uow, envelope("TaskSucceeded", alice.id))
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=alice.headers).status_code == 204
    (delivery,) = deliveries_of(uow, notification_id)
    outcome = deliver_notification(
        uow(), delivery_id=delivery.id, channels=channels(), max_attempts=3
    )
    assert outcome.result == "failed" and not outcome.retry
    (stored,) = deliveries_of(uow, notification_id)
    assert (stored.status, stored.last_error) == ("SKIPPED", "the webhook was deleted")


def test_user_deleted_removes_a_late_notification_and_stops_new_ones(uow, client, alice):
    set_rule(client, alice, "FILE_FAILED", ["EMAIL"])
    late = envelope("FileProcessed", alice.id, source="files")
    assert record(uow, late) is not None
    deleted = Envelope(
        **{
            **late.__dict__,
            "id": str(uuid.uuid4()),
            "type": "UserDeleted",
            "source": "auth",
            "payload": {"user_id": alice.id},
        }
    )
    with uow() as unit:
        handlers.on_user_event(deleted, unit.session)
        unit.commit()
    owner = uuid.UUID(alice.id)
    with uow() as unit:
        assert (
            unit.session.scalars(select(Notification).where(Notification.owner_id == owner)).all()
            == []
        )
    assert record(uow, envelope("FileProcessed", alice.id, source="files")) is None
