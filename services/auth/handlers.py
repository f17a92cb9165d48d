"""Reactions to events: the auth service's own TokensRevoked keeps the revocation list whole."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy.orm import Session

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


SUBSCRIPTIONS = [
    Subscription("auth.revocation-list", ["auth.TokensRevoked"], on_tokens_revoked),
]
