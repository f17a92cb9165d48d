"""Auth use cases: register, log in, rotate refresh tokens, log out, read the current user."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.auth.events import TokensRevoked, UserRegistered
from services.auth.models import RefreshToken, TokenFamily, User
from services.auth.passwords import PasswordHasher
from shared.auth import RevocationList
from shared.db import UnitOfWork


class EmailAlreadyRegistered(Exception):
    """Someone registered with this email already."""


class InvalidCredentials(Exception):
    """Unknown email or wrong password (deliberately indistinguishable to the caller)."""

    def __init__(self, user_id: uuid.UUID | None = None) -> None:
        super().__init__()
        #: The account's id when the email is known (for the security log, never the answer).
        self.user_id = user_id


class RefreshTokenRejected(Exception):
    """The refresh token is unknown, expired, revoked, or was already used."""

    def __init__(self, reason: str, *, reused_by: uuid.UUID | None = None) -> None:
        super().__init__(reason)
        #: Set when the token was used before: the user whose session was just revoked for it.
        self.reused_by = reused_by


class UserNotFound(Exception):
    """The token's user no longer exists."""


class TokenIssuer(Protocol):
    """Signs tokens and reads refresh tokens back (flask-jwt-extended in production)."""

    access_ttl: int
    refresh_ttl: int

    def issue(self, *, user_id: str, family_id: str, refresh_id: str) -> tuple[str, str]:
        """Sign an access token and a refresh token with the given ids."""

    def read_refresh(self, token: str) -> dict[str, Any]:
        """Verify a refresh token's signature and expiry; return its claims."""


@dataclass(frozen=True)
class UserView:
    """What callers may see of a user."""

    id: str
    email: str
    created_at: datetime
    email_verified: bool = False


@dataclass(frozen=True)
class IssuedTokens:
    """An access/refresh pair and the user it was issued to."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: UserView
    token_type: str = "Bearer"


def normalize_email(email: str) -> str:
    """Emails are compared trimmed and lower-cased."""
    return email.strip().lower()


def _view(user: User) -> UserView:
    return UserView(
        id=str(user.id),
        email=user.email,
        created_at=user.created_at,
        email_verified=bool(user.email_verified),
    )


def _start_family(uow: UnitOfWork, issuer: TokenIssuer, user: User) -> IssuedTokens:
    family = TokenFamily(id=uuid.uuid4(), user_id=user.id)
    uow.session.add(family)
    uow.session.flush()
    return _issue_in_family(uow, issuer, user, family.id)


def start_session(uow: UnitOfWork, *, issuer: TokenIssuer, user: User) -> IssuedTokens:
    """Start a token family (one login) for `user` inside the caller's unit of work."""
    return _start_family(uow, issuer, user)


def _issue_in_family(
    uow: UnitOfWork, issuer: TokenIssuer, user: User, family_id: uuid.UUID
) -> IssuedTokens:
    now = datetime.now(UTC)
    refresh = RefreshToken(
        id=uuid.uuid4(),
        family_id=family_id,
        issued_at=now,
        expires_at=now + timedelta(seconds=issuer.refresh_ttl),
    )
    uow.session.add(refresh)
    access_token, refresh_token = issuer.issue(
        user_id=str(user.id), family_id=str(family_id), refresh_id=str(refresh.id)
    )
    return IssuedTokens(access_token, refresh_token, issuer.access_ttl, _view(user))


def register_user(
    uow: UnitOfWork, *, hasher: PasswordHasher, issuer: TokenIssuer, email: str, password: str
) -> IssuedTokens:
    """Create a user and log them in; raises EmailAlreadyRegistered."""
    email = normalize_email(email)
    password_hash = hasher.hash(password)
    with uow:
        if uow.session.scalar(select(User.id).where(User.email == email)) is not None:
            raise EmailAlreadyRegistered(email)
        user = User(id=uuid.uuid4(), email=email, password_hash=password_hash)
        uow.session.add(user)
        try:
            uow.flush()
        except IntegrityError:
            raise EmailAlreadyRegistered(email) from None
        uow.session.refresh(user)
        issued = _start_family(uow, issuer, user)
        uow.add_event(UserRegistered(user_id=str(user.id), email=email))
        uow.commit()
    return issued


def authenticate_user(
    uow: UnitOfWork, *, hasher: PasswordHasher, issuer: TokenIssuer, email: str, password: str
) -> IssuedTokens:
    """Check a password and start a new token family; raises InvalidCredentials."""
    email = normalize_email(email)
    with uow:
        user = uow.session.scalar(select(User).where(User.email == email))
        if not hasher.verify(user.password_hash if user else None, password):
            raise InvalidCredentials(user.id if user else None)
        if user.deleting_at is not None:
            # The same answer as a wrong password: a deleted account no longer exists.
            raise InvalidCredentials(user.id)
        if hasher.needs_rehash(user.password_hash):
            user.password_hash = hasher.hash(password)
        issued = _start_family(uow, issuer, user)
        uow.commit()
    return issued


def rotate_refresh_token(
    uow: UnitOfWork,
    *,
    issuer: TokenIssuer,
    revocations: RevocationList,
    refresh_token: str,
    session_max_seconds: int | None = None,
) -> IssuedTokens:
    """Trade a refresh token for a new pair; a reused token revokes its whole family.

    A session (family) older than `session_max_seconds` is refused however recently it was used.
    """
    claims = issuer.read_refresh(refresh_token)
    try:
        refresh_id = uuid.UUID(str(claims["jti"]))
        family_id = uuid.UUID(str(claims["fam"]))
    except (KeyError, ValueError):
        raise RefreshTokenRejected("malformed refresh token") from None
    with uow:
        family = uow.session.get(TokenFamily, family_id, with_for_update=True)
        stored = uow.session.get(RefreshToken, refresh_id, with_for_update=True)
        if family is None or stored is None or stored.family_id != family.id:
            raise RefreshTokenRejected("unknown refresh token")
        if family.revoked_at is not None:
            raise RefreshTokenRejected("refresh token family is revoked")
        if stored.used_at is not None:
            _revoke_family(
                uow,
                family,
                token_id=None,
                reason="refresh_token_reused",
                ttl_seconds=issuer.access_ttl,
            )
            uow.commit()
            revocations.revoke(family=str(family.id), ttl=issuer.access_ttl)
            raise RefreshTokenRejected("refresh token was already used", reused_by=family.user_id)
        if stored.expires_at <= datetime.now(UTC):
            raise RefreshTokenRejected("refresh token has expired")
        if session_max_seconds is not None and family.created_at + timedelta(
            seconds=session_max_seconds
        ) <= datetime.now(UTC):
            raise RefreshTokenRejected("session has reached its maximum lifetime")
        stored.used_at = datetime.now(UTC)
        user = uow.session.get(User, family.user_id)
        issued = _issue_in_family(uow, issuer, user, family.id)
        uow.commit()
    return issued


def _revoke_family(
    uow: UnitOfWork, family: TokenFamily, *, token_id: str | None, reason: str, ttl_seconds: int
) -> None:
    family.revoked_at = datetime.now(UTC)
    family.revoked_reason = reason
    uow.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family.id, RefreshToken.used_at.is_(None))
        .values(used_at=family.revoked_at)
    )
    uow.add_event(
        TokensRevoked(
            user_id=str(family.user_id),
            family_id=str(family.id),
            token_id=token_id,
            reason=reason,
            ttl_seconds=ttl_seconds,
        )
    )


def log_out(
    uow: UnitOfWork,
    *,
    issuer: TokenIssuer,
    revocations: RevocationList,
    user_id: str,
    token_id: str,
    family_id: str | None,
) -> None:
    """Revoke an access token and its refresh family, in the database and the revocation list."""
    with uow:
        family = (
            uow.session.get(TokenFamily, uuid.UUID(family_id), with_for_update=True)
            if family_id
            else None
        )
        if family is not None and str(family.user_id) == user_id and family.revoked_at is None:
            _revoke_family(
                uow, family, token_id=token_id, reason="logout", ttl_seconds=issuer.access_ttl
            )
            uow.commit()
    revocations.revoke(jti=token_id, family=family_id, ttl=issuer.access_ttl)


def get_user(read_user: Callable[[uuid.UUID], Any], *, user_id: uuid.UUID) -> UserView:
    """The user a token speaks for (`read_user` is a `user_reads.UserById`); raises UserNotFound.

    Every authenticated request through the gateway starts with it, so it is one prepared
    SELECT with no transaction and no ORM.
    """
    row = read_user(user_id)
    if row is None:
        raise UserNotFound(str(user_id))
    return UserView(
        id=row.id, email=row.email, created_at=row.created_at, email_verified=row.email_verified
    )
