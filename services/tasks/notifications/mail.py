"""The mails of notifications: one per EMAIL delivery, and the notice of a disabled webhook."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from services.tasks.models import Notification
from shared.mail import SmtpSettings


def _message(smtp: SmtpSettings, to: str, subject: str, msg_id: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = Address(addr_spec=to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def compose_notification_mail(
    notification: Notification, to: str, key: str, smtp: SmtpSettings
) -> EmailMessage:
    """The mail of one notification; its Message-ID is the delivery's idempotency key."""
    message = _message(
        smtp,
        to,
        f"[Dockyard] {notification.subject}",
        f"<{key}.notification@{smtp.domain}>",
        f"{notification.subject}.\n\nEvent: {notification.event}\n"
        f"Subject id: {notification.subject_id}\n"
        f"At: {notification.created_at.isoformat()}\n",
    )
    message["Dockyard-Idempotency-Key"] = key
    return message


def compose_webhook_disabled(
    webhook_id: str, url: str, failures: int, to: str, smtp: SmtpSettings
) -> EmailMessage:
    """The mail telling a user their webhook was disabled."""
    return _message(
        smtp,
        to,
        "[Dockyard] A webhook of yours was disabled",
        f"<{webhook_id}.{failures}.webhook-disabled@{smtp.domain}>",
        f"Your webhook {url} failed {failures} deliveries in a row and was disabled.\n"
        "Create it again once the receiver works.\n",
    )
