"""Events the auth service publishes."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import Event


@dataclass(frozen=True)
class UserRegistered(Event):
    """A person registered."""

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str
    email: str


@dataclass(frozen=True)
class TokensRevoked(Event):
    """A token family (one login) was revoked; `token_id` names the access token, if any."""

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str
    family_id: str
    token_id: str | None
    reason: str
    #: Seconds a revocation must be remembered (the longest an access token of it can live).
    ttl_seconds: int


@dataclass(frozen=True)
class PasswordResetRequested(Event):
    """A password reset mail is due; the token is derived from `token_id` (never carried)."""

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str
    token_id: str


@dataclass(frozen=True)
class EmailVerificationRequested(Event):
    """An email verification mail is due; the token is derived from `token_id` (never carried)."""

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str
    token_id: str
