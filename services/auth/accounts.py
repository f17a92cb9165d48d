"""Account use cases: change and reset a password, verify an email address, mint mailed tokens.

Mail goes out through events (PasswordResetRequested, EmailVerificationRequested) that the
auth consumer turns into jobs for the mail worker (mail.py); nothing here talks to SMTP.
A password change or reset ends the user's other sessions through sessions.end_sessions in the
transaction that sets the new password (so a crash cannot keep them alive), and once more after
the commit, for a login that read the old password while the change ran.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from services.auth.account_tokens import (
    EMAIL_VERIFICATION,
    PASSWORD_RESET,
    AccountTokenKey,
    token_hash,
)
from services.auth.events import EmailVerificationRequested, PasswordResetRequested
from services.auth.models import AccountToken, TokenFamily, User
from services.auth.password_policy import check_password
from services.auth.passwords import PasswordHasher
from services.auth.service import (
    IssuedTokens,
    TokenIssuer,
    UserNotFound,
    UserView,
    _issue_in_family,
    _view,
    normalize_email,
)
from services.auth.sessions import end_sessions
from shared.auth import RevocationList
from shared.db import UnitOfWork


class AccountTokenInvalid(Exception):
    """The mailed token is unknown, expired or was already used."""


class CurrentPasswordIncorrect(Exception):
    """The current password given with a password change is wrong."""


def mint_token(
    uow: UnitOfWork,
    key: AccountTokenKey,
    *,
    token_id: uuid.UUID,
    user_id: uuid.UUID,
    purpose: str,
    ttl_seconds: int,
) -> str:
    """Store the hash of token `token_id` (unless stored already) and return the token."""
    token = key.token(token_id, purpose)
    uow.session.execute(
        insert(AccountToken)
        .values(
            id=token_id,
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash(token),
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
        )
        .on_conflict_do_nothing(index_elements=[AccountToken.id])
    )
    return token


def _claim_token(uow: UnitOfWork, *, token: str, purpose: str) -> AccountToken:
    """The live token row `token` names, locked; raises AccountTokenInvalid."""
    row = uow.session.scalar(
        select(AccountToken)
        .where(AccountToken.token_hash == token_hash(token), AccountToken.purpose == purpose)
        .with_for_update()
    )
    if row is None or row.used_at is not None or row.expires_at <= datetime.now(UTC):
        raise AccountTokenInvalid()
    return row


def _use_every_token(uow: UnitOfWork, *, user_id: uuid.UUID, purpose: str) -> None:
    # One use of a mailed token voids every other one of the same purpose still in a mailbox.
    uow.session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=datetime.now(UTC))
    )


def request_password_reset(uow: UnitOfWork, *, email: str) -> None:
    """Ask for a reset mail to `email`; whether it has an account is the mail worker's business.

    Known and unknown emails take the same steps here (one event, one commit), so neither the
    answer nor its timing tells which emails have accounts.
    """
    email = normalize_email(email)
    digest = hashlib.sha256(email.encode()).hexdigest()
    with uow:
        uow.add_event(PasswordResetRequested(email=email, email_digest=digest))
        uow.commit()


def reset_password(
    uow: UnitOfWork,
    *,
    hasher: PasswordHasher,
    revocations: RevocationList,
    token: str,
    new_password: str,
) -> str:
    """Set a new password with a mailed token and end every session; returns the user id.

    Raises AccountTokenInvalid, or WeakPassword (the token stays usable then).
    """
    with uow:
        row = _claim_token(uow, token=token, purpose=PASSWORD_RESET)
        user = uow.session.get(User, row.user_id, with_for_update=True)
        check_password(new_password, email=user.email)
        user.password_hash = hasher.hash(new_password)
        _use_every_token(uow, user_id=user.id, purpose=PASSWORD_RESET)
        user_id = str(user.id)
        end_sessions(uow, revocations, user_id=user_id, reason="password_reset")
        uow.commit()
    # Again once committed: a login that read the old password while this ran started a session
    # the first pass could not see.
    end_sessions(uow, revocations, user_id=user_id, reason="password_reset")
    return user_id


def change_password(
    uow: UnitOfWork,
    *,
    hasher: PasswordHasher,
    issuer: TokenIssuer,
    revocations: RevocationList,
    user_id: uuid.UUID,
    current_password: str,
    new_password: str,
) -> IssuedTokens:
    """Replace the password, start a new session and end every other one.

    Raises CurrentPasswordIncorrect, WeakPassword or UserNotFound.
    """
    with uow:
        user = uow.session.get(User, user_id, with_for_update=True)
        if user is None:
            raise UserNotFound(str(user_id))
        if not hasher.verify(user.password_hash, current_password):
            raise CurrentPasswordIncorrect()
        check_password(new_password, email=user.email)
        user.password_hash = hasher.hash(new_password)
        family = TokenFamily(id=uuid.uuid4(), user_id=user.id)
        uow.session.add(family)
        uow.session.flush()
        issued = _issue_in_family(uow, issuer, user, family.id)
        kept = family.id
        end_sessions(uow, revocations, user_id=user_id, keep_family=kept, reason="password_changed")
        uow.commit()
    # Again once committed: a login that read the old password while this ran started a session
    # the first pass could not see.
    end_sessions(uow, revocations, user_id=user_id, keep_family=kept, reason="password_changed")
    return issued


def request_email_verification(uow: UnitOfWork, *, user_id: uuid.UUID) -> None:
    """Ask for a mail confirming the user's address, unless it is verified already."""
    with uow:
        user = uow.session.get(User, user_id)
        if user is None:
            raise UserNotFound(str(user_id))
        if user.email_verified:
            return
        uow.add_event(EmailVerificationRequested(user_id=str(user.id)))
        uow.commit()


def verify_email(uow: UnitOfWork, *, token: str) -> UserView:
    """Mark the email of the mailed token's user verified; raises AccountTokenInvalid."""
    with uow:
        row = _claim_token(uow, token=token, purpose=EMAIL_VERIFICATION)
        user = uow.session.get(User, row.user_id, with_for_update=True)
        user.email_verified = True
        _use_every_token(uow, user_id=user.id, purpose=EMAIL_VERIFICATION)
        uow.commit()
        return _view(user)
