"""Reactions to auth's own events: TokensRevoked keeps the revocation list whole, and account
mail events (PasswordResetRequested, EmailVerificationRequested) become mail jobs; the other
services' replies advance auth's sagas (deletion.py).

A mail job is sent (and confirmed by the broker) inside the consumer's inbox transaction, so a
crash before the commit sends it again on redelivery rather than never: the worker sends each
event's mail once (mail.py), a lost one is not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy.orm import Session

from services.auth import jobs
from services.auth.account_tokens import EMAIL_VERIFICATION, PASSWORD_RESET
from services.auth.deletion import auth_sagas
from shared.auth import RevocationList
from shared.config import CommonSettings
from shared.messaging import Envelope, Subscription


@lru_cache(maxsize=1)
def _revocations() -> RevocationList:
    settings = CommonSettings()
    return RevocationList.from_url(settings.REDIS_URL, namespace=settings.NAMESPACE)


def on_tokens_revoked(
    envelope: Envelope, _session: Session, *, revocations: RevocationList | None = None
) -> None:
    """Write a revoked family to the revocation list for as long as its tokens could live.

    Logout writes it directly too; this catches a Redis write that failed after the commit.
    """
    payload = envelope.payload
    age = (datetime.now(UTC) - envelope.occurred).total_seconds()
    remaining = int(payload["ttl_seconds"] - age)
    if remaining <= 0:
        return
    (revocations or _revocations()).revoke(
        jti=payload.get("token_id"), family=payload["family_id"], ttl=remaining
    )


def on_password_reset_requested(envelope: Envelope, _session: Session) -> None:
    """Queue the reset mail of a request (the worker finds the account, if any)."""
    jobs.send_account_email(envelope.id, PASSWORD_RESET, email=envelope.payload["email"])


def on_email_verification_requested(envelope: Envelope, _session: Session) -> None:
    """Queue the mail confirming a user's address."""
    jobs.send_account_email(envelope.id, EMAIL_VERIFICATION, user_id=envelope.payload["user_id"])


SUBSCRIPTIONS = [
    Subscription("auth.revocation-list", ["auth.TokensRevoked"], on_tokens_revoked),
    Subscription("auth.reset-mail", ["auth.PasswordResetRequested"], on_password_reset_requested),
    Subscription(
        "auth.verification-mail",
        ["auth.EmailVerificationRequested"],
        on_email_verification_requested,
    ),
    # The replies that advance auth's sagas (account deletion: files' and tasks' confirmations).
    auth_sagas().subscription("auth.sagas"),
]
