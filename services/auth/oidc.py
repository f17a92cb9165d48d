"""Sign-in with OpenID Connect: start one, finish it, and find or create the user it is for.

A user is found by the provider's subject (`identities`), never by email alone. The first
sign-in of a subject joins an existing account with the same email only when the provider says
the email is verified and the operator allows it for that provider (`link_verified_email`);
otherwise it creates a user without a password. An unverified email never reaches an account.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from services.auth.events import UserRegistered
from services.auth.models import Identity, OidcLogin, User
from services.auth.oidc_providers import OidcProvider, OidcProviders, ProviderLoginRejected
from services.auth.service import (
    EmailAlreadyRegistered,
    IssuedTokens,
    TokenIssuer,
    normalize_email,
    start_session,
)
from shared.db import UnitOfWork

log = logging.getLogger("dockyard.auth.oidc")

#: Longest email the users table and the API accept.
_EMAIL_MAX_LENGTH = 254


class ProviderNotConfigured(Exception):
    """No provider of that name is configured."""


class RedirectUriNotAllowed(Exception):
    """The redirect URI is not one the operator allows for the provider (no open redirect)."""


class LoginStateRejected(Exception):
    """The state is unknown, expired, already used, or belongs to another provider."""


class EmailNotVerified(Exception):
    """The provider gave no email, or did not say it is verified, where an account needs one."""


@dataclass(frozen=True)
class OidcStart:
    """Where to send the user, and the state the provider will send back."""

    authorization_url: str
    state: str


def _provider(providers: OidcProviders, name: str) -> OidcProvider:
    provider = providers.get(name)
    if provider is None:
        raise ProviderNotConfigured(name)
    return provider


def start_oidc_login(
    uow: UnitOfWork,
    *,
    providers: OidcProviders,
    provider: str,
    redirect_uri: str,
    ttl_seconds: int,
) -> OidcStart:
    """Store a fresh state, nonce and PKCE verifier and build the provider's authorization URL."""
    found = _provider(providers, provider)
    if redirect_uri not in found.config.redirect_uris:
        raise RedirectUriNotAllowed(redirect_uri)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    code_verifier = secrets.token_urlsafe(48)
    url = found.authorization_url(
        redirect_uri=redirect_uri, state=state, nonce=nonce, code_verifier=code_verifier
    )
    now = datetime.now(UTC)
    with uow:
        # Abandoned sign-ins are swept here, by the next one to start: no job needed.
        uow.session.execute(delete(OidcLogin).where(OidcLogin.expires_at < now))
        uow.session.add(
            OidcLogin(
                state=state,
                provider=provider,
                redirect_uri=redirect_uri,
                nonce=nonce,
                code_verifier=code_verifier,
                expires_at=now + timedelta(seconds=ttl_seconds),
            )
        )
        uow.commit()
    return OidcStart(authorization_url=url, state=state)


def _consume_login(uow: UnitOfWork, *, provider: str, state: str) -> Any:
    """Take the stored sign-in out of the table: whoever deletes the row owns it, once."""
    with uow:
        login = uow.session.execute(
            delete(OidcLogin)
            .where(OidcLogin.state == state)
            .returning(
                OidcLogin.provider,
                OidcLogin.redirect_uri,
                OidcLogin.nonce,
                OidcLogin.code_verifier,
                OidcLogin.expires_at,
            )
        ).first()
        uow.commit()
    if login is None or login.provider != provider or login.expires_at <= datetime.now(UTC):
        raise LoginStateRejected()
    return login


def finish_oidc_login(
    uow: UnitOfWork,
    *,
    providers: OidcProviders,
    issuer: TokenIssuer,
    provider: str,
    code: str,
    state: str,
) -> IssuedTokens:
    """Check the state, trade the code (with the PKCE verifier), verify the ID token, sign in.

    Raises ProviderNotConfigured, LoginStateRejected, ProviderLoginRejected, ProviderUnavailable,
    EmailNotVerified or EmailAlreadyRegistered. The state is spent whatever happens next.
    """
    found = _provider(providers, provider)
    login = _consume_login(uow, provider=provider, state=state)
    tokens = found.exchange_code(
        code=code, redirect_uri=login.redirect_uri, code_verifier=login.code_verifier
    )
    claims = found.verify_id_token(
        tokens["id_token"], nonce=login.nonce, access_token=tokens.get("access_token")
    )
    try:
        return _sign_in(uow, issuer=issuer, provider=found, claims=claims)
    except IntegrityError:
        # Two first sign-ins of one subject (or one email) raced; the loser finds the winner's rows.
        return _sign_in(uow, issuer=issuer, provider=found, claims=claims)


def _verified_email(claims: dict[str, Any]) -> str:
    email = claims.get("email")
    # Some providers send the boolean as a string.
    if claims.get("email_verified") not in (True, "true") or not isinstance(email, str):
        raise EmailNotVerified()
    email = normalize_email(email)
    if "@" not in email or len(email) > _EMAIL_MAX_LENGTH:
        raise ProviderLoginRejected("the provider's email is not an email address")
    return email


def _sign_in(
    uow: UnitOfWork, *, issuer: TokenIssuer, provider: OidcProvider, claims: dict[str, Any]
) -> IssuedTokens:
    now = datetime.now(UTC)
    email_claim = claims.get("email")
    if not isinstance(email_claim, str) or len(email_claim) > _EMAIL_MAX_LENGTH:
        email_claim = None
    with uow:
        identity = uow.session.scalar(
            select(Identity)
            .where(Identity.provider == provider.name, Identity.subject == claims["sub"])
            .with_for_update()
        )
        outcome = "returning"
        if identity is not None:
            user = uow.session.get(User, identity.user_id)
            identity.last_login_at = now
            identity.email = email_claim
        else:
            email = _verified_email(claims)
            user = uow.session.scalar(select(User).where(User.email == email))
            if user is None:
                # The provider vouched for the address (_verified_email), so it is verified here.
                user = User(id=uuid.uuid4(), email=email, password_hash=None, email_verified=True)
                uow.session.add(user)
                uow.flush()
                uow.session.refresh(user)
                uow.add_event(UserRegistered(user_id=str(user.id), email=email))
                outcome = "created"
            elif provider.config.link_verified_email and user.email_verified:
                # Both sides must have proven the address: linking to an account whose email
                # was never verified would hand it to whoever registered it first.
                outcome = "linked"
            else:
                raise EmailAlreadyRegistered(email)
            uow.session.add(
                Identity(
                    provider=provider.name,
                    subject=claims["sub"],
                    user_id=user.id,
                    email=email_claim,
                    last_login_at=now,
                )
            )
            uow.flush()
        if user.deleting_at is not None:
            raise ProviderLoginRejected("this account is being deleted")
        issued = start_session(uow, issuer=issuer, user=user)
        uow.commit()
    log.info(
        "oidc sign-in",
        extra={"user_id": str(user.id), "provider": provider.name, "outcome": outcome},
    )
    return issued
