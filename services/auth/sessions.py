"""Ending a user's sessions (token families) at once: on a password change or reset.

A stand-in with the signature the session work of issue 9 settles on: that version replaces
this one at integration.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

from sqlalchemy import select

from services.auth.config import AuthSettings
from services.auth.models import TokenFamily
from services.auth.service import _revoke_family
from shared.auth import RevocationList
from shared.db import UnitOfWork


@lru_cache(maxsize=1)
def _access_ttl() -> int:
    # The deny-list must remember a family as long as one of its access tokens can live.
    return AuthSettings().ACCESS_TOKEN_TTL


def end_sessions(
    uow: UnitOfWork,
    revocations: RevocationList,
    *,
    user_id,
    keep_family=None,
    reason: str,
) -> int:
    """Revoke every live token family of the user but `keep_family`; return how many ended.

    As logout does: the families and their refresh tokens in the database with a TokensRevoked
    event each (the consumer heals a lost deny-list write), then the deny-list in Redis.
    """
    ttl = _access_ttl()
    keep = uuid.UUID(str(keep_family)) if keep_family else None
    with uow:
        query = select(TokenFamily).where(
            TokenFamily.user_id == uuid.UUID(str(user_id)), TokenFamily.revoked_at.is_(None)
        )
        if keep is not None:
            query = query.where(TokenFamily.id != keep)
        families = uow.session.scalars(query.with_for_update()).all()
        for family in families:
            _revoke_family(uow, family, token_id=None, reason=reason, ttl_seconds=ttl)
        family_ids = [str(family.id) for family in families]
        uow.commit()
    for family_id in family_ids:
        revocations.revoke(family=family_id, ttl=ttl)
    return len(family_ids)
