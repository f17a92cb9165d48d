"""Notifications: one per (event, user), made in the consumer's transaction with a delivery per
channel (LOG sent there and then when the operator's notifier is inline, the others pending for
a delivery job); and the user's history with each delivery's outcome."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.tasks.events import NotificationCreated
from services.tasks.models import SCHEMA, Notification, NotificationDelivery, Webhook
from services.tasks.notifications.kinds import Channel, occurrence_of
from services.tasks.notifications.rules import recipient_of
from shared.db import UnitOfWork, add_events
from shared.events import Envelope
from shared.notifications import Notification as LogNotification
from shared.notifications import Notifier
from shared.pagination import KeysetCursor, Page, newest_first_page, page_of

log = logging.getLogger("dockyard.notifications")

#: Namespace of the ids derived from (event id, user) and (notification, channel, webhook).
_IDS = uuid.UUID("3b7d1c9e-0f44-4c1e-9a55-1d2f6e8b7a10")


def notification_id_of(event_id: str, owner_id: str) -> uuid.UUID:
    """The id of an event's notification to one user: the same however often the event comes."""
    return uuid.uuid5(_IDS, f"{uuid.UUID(event_id)}:{uuid.UUID(owner_id)}")


def idempotency_key_of(notification_id: uuid.UUID, channel: str, target: str = "") -> str:
    """The idempotency key of one delivery: (notification, channel[, webhook])."""
    return str(uuid.uuid5(_IDS, f"{notification_id}:{channel}:{target}"))


def _webhooks_for(session: Session, owner_id: uuid.UUID, event: str) -> list[uuid.UUID]:
    rows = session.execute(
        select(Webhook.id, Webhook.events).where(Webhook.owner_id == owner_id, Webhook.enabled)
    ).all()
    return [webhook_id for webhook_id, events in rows if not events or event in events]


def log_notification_of(
    *, owner_id: uuid.UUID | str, subject_id: str, details: dict
) -> LogNotification:
    """What the LOG channel tells the operator's notifier of a notification."""
    return LogNotification(
        user_id=str(owner_id),
        subject_type=details["subject_type"],
        subject_id=subject_id,
        subject_name=details["subject_name"],
        status=details["status"],
    )


def _sent_inline(notifier: Notifier, notification: LogNotification) -> bool:
    try:
        notifier.send(notification)
    except Exception:  # noqa: BLE001 - an operator's channel may fail any way: the job retries
        log.warning("inline LOG delivery failed; leaving it to a delivery job", exc_info=True)
        return False
    return True


def record_notification(
    session: Session, envelope: Envelope, *, inline: Notifier | None = None
) -> uuid.UUID | None:
    """Make the envelope's notification and its deliveries, and raise NotificationCreated.

    Nothing for a deleted user, and nothing again for an event handled before. With `inline`
    (a notifier that is local and cannot block: shared.notifications.is_inline), the LOG
    delivery is sent here and recorded DELIVERED in the caller's transaction, so it costs no
    delivery job; NotificationCreated lists only the deliveries still PENDING.
    """
    occurrence = occurrence_of(envelope)
    owner_id = uuid.UUID(occurrence.owner_id)
    deleted, channels = recipient_of(session, owner_id=owner_id, event=occurrence.event.value)
    if deleted:
        return None
    notification_id = notification_id_of(envelope.id, occurrence.owner_id)
    created = session.execute(
        insert(Notification)
        .values(
            id=notification_id,
            owner_id=owner_id,
            event=occurrence.event.value,
            subject=occurrence.subject,
            subject_id=occurrence.subject_id,
            source_event_id=uuid.UUID(envelope.id),
            details=occurrence.details,
        )
        .on_conflict_do_nothing()
        .returning(Notification.id)
    ).first()
    if created is None:
        return None
    deliveries = []
    for channel in channels:
        targets = (
            _webhooks_for(session, owner_id, occurrence.event.value)
            if channel is Channel.WEBHOOK
            else [None]
        )
        for webhook_id in targets:
            key = idempotency_key_of(notification_id, channel.value, str(webhook_id or ""))
            delivery = NotificationDelivery(
                id=uuid.UUID(key),
                notification_id=notification_id,
                channel=channel.value,
                webhook_id=webhook_id,
                idempotency_key=key,
            )
            # A rolled-back transaction (the event comes again) logs the line again: a LOG
            # delivery is at least once, as a delivery job's is.
            if (
                channel is Channel.LOG
                and inline is not None
                and _sent_inline(
                    inline,
                    log_notification_of(
                        owner_id=owner_id,
                        subject_id=occurrence.subject_id,
                        details=occurrence.details,
                    ),
                )
            ):
                delivery.status, delivery.attempts = "DELIVERED", 1
                delivery.delivered_at = datetime.now(UTC)
            deliveries.append(delivery)
    session.add_all(deliveries)
    session.flush()
    add_events(
        session,
        [
            NotificationCreated(
                notification_id=str(notification_id),
                owner_id=occurrence.owner_id,
                event=occurrence.event.value,
                subject=occurrence.subject,
                subject_id=occurrence.subject_id,
                delivery_ids=[str(d.id) for d in deliveries if d.status != "DELIVERED"],
            )
        ],
        source=SCHEMA,
        schema=SCHEMA,
    )
    return notification_id


def _delivery_view(delivery: NotificationDelivery) -> dict:
    return {
        "channel": delivery.channel,
        "webhook_id": str(delivery.webhook_id) if delivery.webhook_id else None,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "response_status": delivery.response_status,
        "idempotency_key": delivery.idempotency_key,
        "delivered_at": delivery.delivered_at,
    }


def notification_body(notification: Notification) -> dict:
    """The notification as GraphQL's Notification shows it, without deliveries (webhook body)."""
    return {
        "id": str(notification.id),
        "event": notification.event,
        "subject": notification.subject,
        "subjectId": notification.subject_id,
        "createdAt": notification.created_at.isoformat(),
    }


def list_notifications(
    uow: UnitOfWork, *, owner_id: uuid.UUID, first: int, after: KeysetCursor | None = None
) -> Page[dict]:
    """A page of the user's notifications with their deliveries, newest first."""
    owned = Notification.owner_id == owner_id
    query = newest_first_page(
        select(Notification).where(owned),
        Notification.created_at,
        Notification.id,
        first=first,
        after=after,
    )
    with uow:
        rows = uow.session.scalars(query).all()
        total = uow.session.scalar(select(func.count()).select_from(Notification).where(owned))
        ids = [row.id for row in rows]
        by_notification: dict[uuid.UUID, list[dict]] = {}
        for delivery in uow.session.scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.notification_id.in_(ids))
            .order_by(NotificationDelivery.channel, NotificationDelivery.id)
        ):
            by_notification.setdefault(delivery.notification_id, []).append(
                _delivery_view(delivery)
            )

        def node(row: Notification) -> dict:
            return {
                "id": str(row.id),
                "event": row.event,
                "subject": row.subject,
                "subject_id": row.subject_id,
                "created_at": row.created_at,
                "deliveries": by_notification.get(row.id, []),
            }

        return page_of(rows, first=first, total_count=total or 0, node=node)


def delete_user_notifications(session: Session, *, owner_id: uuid.UUID) -> None:
    """Forget a deleted user's notifications (their deliveries go with them) and webhooks."""
    session.execute(delete(Notification).where(Notification.owner_id == owner_id))
    session.execute(delete(Webhook).where(Webhook.owner_id == owner_id))
