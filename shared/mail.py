"""Sending mail over SMTP: the settings, one delivery, and what a failure means (retry or not).

Auth's account mail and tasks' notification mail both hand a composed EmailMessage to
`deliver`; each service reads its own `<SERVICE>_SMTP_*` settings into SmtpSettings.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr


class MailUnavailable(Exception):
    """The SMTP server could not be reached or refused for now (retry later)."""


class MailRefused(Exception):
    """The SMTP server refused the mail for good (a 5xx answer): retrying will not help."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how a service sends mail."""

    host: str
    port: int
    username: str
    password: str
    starttls: bool
    timeout: float
    sender: str

    @classmethod
    def from_settings(cls, settings) -> SmtpSettings:
        """The SMTP part of a service's settings (SMTP_HOST, SMTP_PORT, ... SMTP_FROM)."""
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
