"""Account mail (password reset, email verification) over SMTP, sent once per event.

Once: the mail's event id is inserted into `sent_emails` in a transaction that stays open while
the SMTP server takes the mail and commits right after. A second job for the same event (a
redelivery, a duplicate) either finds the committed row and stops, or waits on the uncommitted
one and then finds it, or (if the first failed and rolled back) sends in its stead.

The window this leaves: the worker dies after the server accepted the mail and before the commit.
The job is then redelivered (late ack) and the mail sent again, with the same Message-ID (derived
from the event id), so a receiving server or client that de-duplicates by Message-ID shows it
once. Nothing closes that window without the SMTP server's help; a mail is never lost to it.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import quote

from sqlalchemy.dialects.postgresql import insert

from services.auth.account_tokens import EMAIL_VERIFICATION, PASSWORD_RESET, AccountTokenKey
from services.auth.models import AccountToken, SentEmail, User
from shared.db import UnitOfWork

log = logging.getLogger(__name__)


class MailUnavailable(Exception):
    """The SMTP server could not be reached or refused for now (retry later)."""


class MailRefused(Exception):
    """The SMTP server refused the mail for good (a 5xx answer): retrying will not help."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how account mail is sent."""

    host: str
    port: int
    username: str
    password: str
    starttls: bool
    timeout: float
    sender: str

    @classmethod
    def from_settings(cls, settings) -> SmtpSettings:
        """The SMTP part of AuthSettings."""
        return cls(
            host=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            username=settings.SMTP_USERNAME,
            password=settings.SMTP_PASSWORD,
            starttls=settings.SMTP_STARTTLS,
            timeout=settings.SMTP_TIMEOUT,
            sender=settings.SMTP_FROM,
        )

    def __repr__(self) -> str:
        return f"SmtpSettings(host={self.host!r}, port={self.port}, user={self.username!r})"

    @property
    def domain(self) -> str:
        """The sender's domain: it names the Message-IDs."""
        return parseaddr(self.sender)[1].rpartition("@")[2] or "dockyard.localhost"


def message_id(event_id: str, domain: str) -> str:
    """The Message-ID of the mail of an event: the same on every try, so receivers de-duplicate."""
    return f"<{uuid.UUID(event_id)}.account-mail@{domain}>"


_TEMPLATES = {
    PASSWORD_RESET: (
        "Reset your Dockyard password",
        "reset-password",
        "Someone (hopefully you) asked to reset the password of your Dockyard account.\n\n"
        "Open this link within {minutes} minutes to choose a new password:\n\n{link}\n\n"
        "The link works once. If you did not ask, ignore this mail: your password stays as is.\n",
    ),
    EMAIL_VERIFICATION: (
        "Confirm your email address for Dockyard",
        "verify-email",
        "Open this link within {minutes} minutes to confirm this address for your Dockyard "
        "account:\n\n{link}\n\nIf you did not ask, ignore this mail.\n",
    ),
}


def compose(
    *, purpose: str, to: str, token: str, app_url: str, minutes: int, sender: str, msg_id: str
) -> EmailMessage:
    """The mail carrying `token` in a link to the web app."""
    subject, path, body = _TEMPLATES[purpose]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(addr_spec=to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-generated"
    link = f"{app_url.rstrip('/')}/{path}?token={quote(token, safe='')}"
    message.set_content(body.format(link=link, minutes=minutes))
    return message


def deliver(smtp: SmtpSettings, message: EmailMessage) -> None:
    """Hand the mail to the SMTP server; MailUnavailable (retry) or MailRefused (give up)."""
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(code >= 500 for code in codes):
            raise MailRefused(f"recipient refused ({codes})") from None
        raise MailUnavailable(f"recipient deferred ({codes})") from None
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError):
            raise MailRefused(f"SMTP {exc.smtp_code}") from None
        raise MailUnavailable(f"SMTP {exc.smtp_code}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise MailUnavailable(f"{type(exc).__name__}: {exc}") from None


def send_account_email(
    uow: UnitOfWork,
    *,
    smtp: SmtpSettings,
    key: AccountTokenKey,
    app_url: str,
    event_id: str,
    token_id: str,
) -> str:
    """Send the mail of one account-token event unless it was sent; returns what happened."""
    msg_id = message_id(event_id, smtp.domain)
    with uow:
        claimed = uow.session.execute(
            insert(SentEmail)
            .values(event_id=uuid.UUID(event_id), message_id=msg_id)
            .on_conflict_do_nothing()
            .returning(SentEmail.event_id)
        ).first()
        if claimed is None:
            return "already-sent"
        row = uow.session.get(AccountToken, uuid.UUID(token_id))
        user = uow.session.get(User, row.user_id) if row is not None else None
        if row is None or user is None:
            return "gone"
        minutes = max(1, round((row.expires_at - row.created_at).total_seconds() / 60))
        message = compose(
            purpose=row.purpose,
            to=user.email,
            token=key.token(row.id, row.purpose),
            app_url=app_url,
            minutes=minutes,
            sender=smtp.sender,
            msg_id=msg_id,
        )
        deliver(smtp, message)
        uow.commit()
    log.info(
        "sent %s mail for event %s",
        row.purpose,
        event_id,
        extra={"user_id": str(row.user_id), "event_id": event_id, "message_id": msg_id},
    )
    return "sent"
