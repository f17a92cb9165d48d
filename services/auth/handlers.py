"""Reactions to auth's own events: TokensRevoked keeps the revocation list whole, and account
mail events (PasswordResetRequested, EmailVerificationRequested) become mail jobs.

A mail job is sent (and confirmed by the broker) inside the consumer's inbox transaction, so a
crash before the commit sends it again on redelivery rather than never: the worker sends each
event's mail once (mail.py), a lost one is not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy.orm import Session

from services.auth import jobs
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


def on_account_mail_requested(envelope: Envelope, _session: Session) -> None:
    """Queue the mail of an account-token event, keyed by the event's id."""
    jobs.send_account_email(envelope.id, envelope.payload["token_id"])


SUBSCRIPTIONS = [
    Subscription("auth.revocation-list", ["auth.TokensRevoked"], on_tokens_revoked),
    Subscription(
        "auth.mail",
        ["auth.PasswordResetRequested", "auth.EmailVerificationRequested"],
        on_account_mail_requested,
    ),
]
