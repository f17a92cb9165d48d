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
    """Someone asked for a reset mail to `email`, which may or may not have an account.

    Raised for every request alike, so the request takes the same steps either way; the mail
    worker finds the account (or none) and mints the token.
    """

    aggregate_type = "password_reset"
    #: An email may be longer than an aggregate id: its SHA-256 (hex) names the aggregate.
    aggregate_field = "email_digest"

    email: str
    email_digest: str


@dataclass(frozen=True)
class EmailVerificationRequested(Event):
    """A user asked for a mail confirming their email address; the mail worker mints the token."""

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str


@dataclass(frozen=True)
class AccountDeletionRequested(Event):
    """A user asked to delete their account: every service removes what it holds of theirs.

    Files answers with files.UserFilesDeleted, tasks with tasks.UserTasksDeleted, each naming
    `saga_id` (auth's account-deletion saga). Raised again when a step times out or is retried.
    """

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str
    saga_id: str


@dataclass(frozen=True)
class UserDeleted(Event):
    """A user and everything auth held of them are gone (every other service confirmed first)."""

    aggregate_type = "user"
    aggregate_field = "user_id"

    user_id: str
