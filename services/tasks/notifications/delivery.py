"""Sending one delivery once: locked while it is sent, its outcome recorded in the same
transaction; failures counted (a webhook failing too often is disabled); the stuck-ones sweep.

The delivery's row is locked (FOR UPDATE SKIP LOCKED) in a transaction that stays open while
the channel sends and commits the outcome right after. A second job for the same delivery
either finds it DELIVERED, or finds it locked and tries later. A worker killed mid-send loses
its transaction, so the redelivered job (late ack) sends again with the same idempotency key
(the Dockyard-Idempotency-Key header, the mail's Message-ID): we never send twice once we know
it was taken; receivers de-duplicate the copy a killed worker may leave behind.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from services.tasks.events import WebhookDisabled
from services.tasks.models import Notification, NotificationDelivery, Webhook, users
from services.tasks.notifications import webhooks
from services.tasks.notifications.history import log_notification_of, notification_body
from services.tasks.notifications.kinds import Channel
from services.tasks.notifications.mail import compose_notification_mail, compose_webhook_disabled
from shared.db import UnitOfWork
from shared.mail import MailRefused, MailUnavailable, SmtpSettings, deliver
from shared.notifications import Notifier

log = logging.getLogger("dockyard.notifications")


@dataclass(frozen=True)
class Channels:
    """What sends: the operator's log notifier, the SMTP server, the webhook policy."""

    notifier: Notifier
    smtp: SmtpSettings
    webhook_policy: webhooks.WebhookPolicy
    resolve: Callable = webhooks.resolve_host


@dataclass(frozen=True)
class Outcome:
    """What one try came to: `retry` when the delivery is still PENDING after a failure."""

    result: str
    retry: bool = False


class _Failed(Exception):
    """A try failed: `final` when trying again cannot help, `skip` when it could not be sent."""

    def __init__(
        self, message: str, status: int | None = None, final: bool = False, skip: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.final = final or skip
        self.skip = skip


def _send_log(notification: Notification, channels: Channels) -> None:
    try:
        channels.notifier.send(
            log_notification_of(
                owner_id=notification.owner_id,
                subject_id=notification.subject_id,
                details=notification.details,
            )
        )
    except Exception as exc:  # noqa: BLE001 - an operator's channel may fail any way: retry it
        raise _Failed(f"{type(exc).__name__}: {exc}") from None


def _send_email(uow: UnitOfWork, notification: Notification, key: str, channels: Channels) -> None:
    email = uow.session.scalar(select(users.c.email).where(users.c.id == notification.owner_id))
    if not email:
        raise _Failed("no email address known for the user", skip=True)
    try:
        deliver(channels.smtp, compose_notification_mail(notification, email, key, channels.smtp))
    except MailRefused as exc:
        raise _Failed(str(exc), final=True) from None
    except MailUnavailable as exc:
        raise _Failed(str(exc)) from None


def _send_webhook(
    webhook: Webhook | None, notification: Notification, key: str, channels: Channels
) -> int:
    if webhook is None:
        raise _Failed("the webhook was deleted", skip=True)
    if not webhook.enabled:
        raise _Failed("the webhook is disabled", skip=True)
    try:
        target = webhooks.check_url(webhook.url, channels.webhook_policy, resolve=channels.resolve)
    except webhooks.WebhookUrlRefused as exc:
        raise _Failed(str(exc)) from None
    body = json.dumps(notification_body(notification), separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": webhooks.USER_AGENT,
        webhooks.SIGNATURE_HEADER: webhooks.sign(webhook.secret, int(time.time()), body),
        webhooks.IDEMPOTENCY_HEADER: key,
        webhooks.EVENT_HEADER: notification.event,
    }
    try:
        return webhooks.post(target, body, headers, timeout=channels.webhook_policy.timeout)
    except webhooks.DeliveryError as exc:
        raise _Failed(str(exc), exc.status) from None


def deliver_notification(
    uow: UnitOfWork, *, delivery_id: uuid.UUID, channels: Channels, max_attempts: int
) -> Outcome:
    """Send one delivery unless it is done or being sent; record what became of it."""
    with uow:
        session = uow.session
        delivery = session.scalar(
            select(NotificationDelivery)
            .where(NotificationDelivery.id == delivery_id)
            .with_for_update(skip_locked=True)
        )
        if delivery is None:
            exists = session.scalar(
                select(NotificationDelivery.id).where(NotificationDelivery.id == delivery_id)
            )
            return Outcome("busy", retry=True) if exists else Outcome("absent")
        if delivery.status != "PENDING":
            return Outcome(f"already-{delivery.status.lower()}")
        notification = session.get(Notification, delivery.notification_id)
        webhook = None
        if delivery.webhook_id is not None:
            webhook = session.scalar(
                select(Webhook).where(Webhook.id == delivery.webhook_id).with_for_update()
            )
        delivery.attempts += 1
        try:
            if delivery.channel == Channel.LOG:
                _send_log(notification, channels)
            elif delivery.channel == Channel.EMAIL:
                _send_email(uow, notification, delivery.idempotency_key, channels)
            elif delivery.channel == Channel.WEBHOOK:
                delivery.response_status = _send_webhook(
                    webhook, notification, delivery.idempotency_key, channels
                )
        except _Failed as exc:
            delivery.last_error = str(exc)[:2000]
            delivery.response_status = exc.status
            final = exc.final or delivery.attempts >= max_attempts
            delivery.status = ("SKIPPED" if exc.skip else "FAILED") if final else "PENDING"
            if webhook is not None and webhook.enabled and not exc.final:
                _count_failure(uow, webhook, channels)
            uow.commit()
            log.info(
                "delivery %s (%s) of notification %s failed: %s",
                delivery.id,
                delivery.channel,
                notification.id,
                delivery.last_error,
            )
            return Outcome("failed" if final else "retry", retry=not final)
        delivery.status = "DELIVERED"
        delivery.delivered_at = datetime.now(UTC)
        delivery.last_error = None
        if webhook is not None:
            webhook.consecutive_failures = 0
        uow.commit()
        return Outcome("delivered")


def _count_failure(uow: UnitOfWork, webhook: Webhook, channels: Channels) -> None:
    webhook.consecutive_failures += 1
    if webhook.consecutive_failures < channels.webhook_policy.disable_after:
        return
    webhook.enabled = False
    webhook.disabled_reason = f"{webhook.consecutive_failures} deliveries in a row failed"
    uow.add_event(
        WebhookDisabled(
            webhook_id=str(webhook.id),
            owner_id=str(webhook.owner_id),
            failures=webhook.consecutive_failures,
        )
    )
    log.warning(
        "Webhook %s of user %s disabled after %d failed deliveries in a row",
        webhook.id,
        webhook.owner_id,
        webhook.consecutive_failures,
        extra={"user_id": str(webhook.owner_id), "webhook_id": str(webhook.id)},
    )


def announce_webhook_disabled(
    uow: UnitOfWork, *, webhook_id: str, owner_id: str, failures: int, smtp: SmtpSettings
) -> str:
    """Mail the owner that their webhook was disabled (the log line was written already)."""
    with uow:
        email = uow.session.scalar(select(users.c.email).where(users.c.id == uuid.UUID(owner_id)))
        url = uow.session.scalar(select(Webhook.url).where(Webhook.id == uuid.UUID(webhook_id)))
    if not email or url is None:
        return "nobody-to-tell"
    deliver(smtp, compose_webhook_disabled(webhook_id, url, failures, email, smtp))
    return "sent"


def stuck_deliveries(uow: UnitOfWork, *, older_than: float, limit: int = 500) -> list[str]:
    """Pending deliveries untouched for `older_than` seconds, touched now (to be sent again)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    with uow:
        ids = uow.session.scalars(
            update(NotificationDelivery)
            .where(
                NotificationDelivery.id.in_(
                    select(NotificationDelivery.id)
                    .where(
                        NotificationDelivery.status == "PENDING",
                        NotificationDelivery.updated_at < cutoff,
                    )
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .values(updated_at=datetime.now(UTC))
            .returning(NotificationDelivery.id)
        ).all()
        uow.commit()
    return [str(i) for i in ids]
