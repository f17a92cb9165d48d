"""Account mail (password reset, email verification) over SMTP, sent once per event.

The worker finds the recipient (a reset request may name an email without an account: then
nothing is sent), commits the single-use token (its id derived from the event's), then sends.

Once: the mail's event id is inserted into `sent_emails` in a transaction that stays open while
the SMTP server takes the mail and commits right after. A second job for the same event (a
redelivery, a duplicate) either finds the committed row and stops, or waits on the uncommitted
one and then finds it, or (if the first failed and rolled back) sends in its stead.

The window this leaves: the worker dies after the server accepted the mail and before the commit.
The job is then redelivered (late ack) and the mail sent again, with the same Message-ID and the
same link (both derived from the event id), so a receiving server or client that de-duplicates by
Message-ID shows it once, and either copy's link works. Nothing closes that window without the
SMTP server's help; a mail is never lost to it.
"""

from __future__ import annotations

import logging
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.auth.account_tokens import EMAIL_VERIFICATION, PASSWORD_RESET, AccountTokenKey
from services.auth.accounts import mint_token
from services.auth.models import SentEmail, User
from shared.db import UnitOfWork
from shared.mail import MailRefused, MailUnavailable, SmtpSettings, deliver

__all__ = ["MailRefused", "MailUnavailable", "SmtpSettings", "deliver"]

log = logging.getLogger(__name__)

#: Namespace of the token ids derived from event ids.
_TOKEN_IDS = uuid.UUID("6f0d3c52-56a8-4a43-9d1e-7f0c1e0b9a21")


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


def token_id_of(event_id: str) -> uuid.UUID:
    """The id of the token an event's mail carries: the same on every try of that mail."""
    return uuid.uuid5(_TOKEN_IDS, str(uuid.UUID(event_id)))


def send_account_email(
    uow: UnitOfWork,
    *,
    smtp: SmtpSettings,
    key: AccountTokenKey,
    app_url: str,
    ttl_seconds: dict[str, int],
    event_id: str,
    purpose: str,
    user_id: str | None = None,
    email: str | None = None,
) -> str:
    """Mint the token and send the mail of one account event unless it was sent; say what
    happened (`sent`, `already-sent`, `no-account`, `already-verified`).

    The token is committed first, with an id derived from the event's, so its link works from
    the moment the mail can arrive, and a mail sent again after a crash carries the same link.
    """
    msg_id = message_id(event_id, smtp.domain)
    with uow:
        if uow.session.get(SentEmail, uuid.UUID(event_id)) is not None:
            return "already-sent"
        if user_id is not None:
            user = uow.session.get(User, uuid.UUID(user_id))
        else:
            user = uow.session.scalar(select(User).where(User.email == email))
        if user is None:
            return "no-account"
        if purpose == EMAIL_VERIFICATION and user.email_verified:
            return "already-verified"
        recipient, recipient_id = user.email, str(user.id)
        token = mint_token(
            uow,
            key,
            token_id=token_id_of(event_id),
            user_id=user.id,
            purpose=purpose,
            ttl_seconds=ttl_seconds[purpose],
        )
        uow.commit()
    message = compose(
        purpose=purpose,
        to=recipient,
        token=token,
        app_url=app_url,
        minutes=max(1, round(ttl_seconds[purpose] / 60)),
        sender=smtp.sender,
        msg_id=msg_id,
    )
    with uow:
        claimed = uow.session.execute(
            insert(SentEmail)
            .values(event_id=uuid.UUID(event_id), message_id=msg_id)
            .on_conflict_do_nothing()
            .returning(SentEmail.event_id)
        ).first()
        if claimed is None:
            return "already-sent"
        deliver(smtp, message)
        uow.commit()
    log.info(
        "sent %s mail for event %s",
        purpose,
        event_id,
        extra={"user_id": recipient_id, "event_id": event_id, "message_id": msg_id},
    )
    return "sent"
