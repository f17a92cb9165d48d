"""The auth service's Celery worker: sends account mail (password reset, email verification).

Run by `celery -A services.auth.worker:celery_app worker`; the only module that builds the auth
Celery app. Jobs come from the auth consumer (handlers.py sends `auth.send_account_email` by
name, see jobs.py). They are acknowledged late and redelivered if a worker dies; mail.py sends
each event's mail once.
"""

from __future__ import annotations

import logging
import math

from celery import signals

from services.auth import jobs, mail
from services.auth.account_tokens import EMAIL_VERIFICATION, PASSWORD_RESET, AccountTokenKey
from services.auth.app import create_app
from services.auth.config import AuthSettings
from shared.celery import celery_init_app
from shared.logging import configure_logging

log = logging.getLogger(__name__)

settings = AuthSettings()
configure_logging("auth-worker", settings.LOG_LEVEL)
flask_app = create_app(settings)
flask_app.config["CELERY"] = jobs.celery_overrides(settings)
celery_app = celery_init_app(flask_app, settings)
smtp = mail.SmtpSettings.from_settings(settings)
token_key = AccountTokenKey.from_private_pem(flask_app.extensions["auth"].keys.private_pem)

#: Retry policy while the SMTP server is unreachable: exponential backoff with full jitter.
RETRY_POLICY = {
    # Whole seconds: with jitter, Celery draws the delay with random.randrange.
    "retry_backoff": math.ceil(settings.MAIL_RETRY_BACKOFF_SECONDS),
    "retry_backoff_max": math.ceil(settings.MAIL_RETRY_BACKOFF_MAX_SECONDS),
    "retry_jitter": True,
    "max_retries": settings.MAIL_MAX_RETRIES,
}


@signals.setup_logging.connect
def _keep_our_logging(**_kwargs: object) -> None:
    """Keep the JSON log format of every other Dockyard process (Celery would install its own)."""


@celery_app.task(
    name=jobs.SEND_ACCOUNT_EMAIL, autoretry_for=(mail.MailUnavailable,), **RETRY_POLICY
)
def send_account_email(
    event_id: str, purpose: str, user_id: str | None = None, email: str | None = None
) -> str:
    """Send the mail of one account event, once (retried while SMTP is unavailable)."""
    try:
        return mail.send_account_email(
            flask_app.extensions["auth"].uow(),
            smtp=smtp,
            key=token_key,
            app_url=settings.PUBLIC_APP_URL,
            ttl_seconds={
                PASSWORD_RESET: settings.PASSWORD_RESET_TTL,
                EMAIL_VERIFICATION: settings.EMAIL_VERIFICATION_TTL,
            },
            event_id=event_id,
            purpose=purpose,
            user_id=user_id,
            email=email,
        )
    except mail.MailRefused as exc:
        log.error("the SMTP server refused the mail of event %s for good: %s", event_id, exc)
        return "refused"
