"""Sessions (token families) as a whole: ending every session of a user at once."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from services.auth.models import TokenFamily
from services.auth.service import _revoke_family
from shared.auth import RevocationList
from shared.db import UnitOfWork


def end_sessions(
    uow: UnitOfWork,
    revocations: RevocationList,
    *,
    user_id,
    keep_family=None,
    reason: str,
) -> int:
    """Revoke every live session (family) of a user but `keep_family`; return how many.

    The same path as logout: the families are marked revoked with their refresh tokens used up
    and a TokensRevoked event each, in one transaction, then written to the deny-list for as
    long as their access tokens live (`revocations.access_ttl`, auth's list). Given a unit of
    work already entered, it joins that transaction and leaves the commit to the caller; the
    deny-list is written at once then (refusing the tokens early is the safe side).
    """
    ttl = revocations.access_ttl
    joined = uow.session is not None
    if not joined:
        uow.__enter__()
    try:
        query = (
            select(TokenFamily)
            .where(
                TokenFamily.user_id == uuid.UUID(str(user_id)),
                TokenFamily.revoked_at.is_(None),
            )
            .order_by(TokenFamily.id)
            .with_for_update()
        )
        if keep_family is not None:
            query = query.where(TokenFamily.id != uuid.UUID(str(keep_family)))
        families = list(uow.session.scalars(query))
        for family in families:
            _revoke_family(uow, family, token_id=None, reason=reason, ttl_seconds=ttl)
        if not joined:
            uow.commit()
    finally:
        if not joined:
            uow.__exit__(None, None, None)
    for family in families:
        revocations.revoke(family=str(family.id), ttl=ttl)
    return len(families)
