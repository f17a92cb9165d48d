"""Settings of the auth service, from the environment."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.auth.oidc_providers import parse_oidc_client_secrets, parse_oidc_providers
from shared.celery import parse_countdown
from shared.config import (
    CommonSettings,
    ConfigError,
    EnvVar,
    Settings,
    database_url_var,
    parse_bool,
    parse_positive_int,
)
from shared.service_identity import SERVICE_CREDENTIAL_REQUIRED, service_secret_var


def parse_pem(raw: str) -> str:
    """Accept a PEM with real newlines or with `\\n` escapes (as .env files carry it)."""
    pem = raw.replace("\\n", "\n").strip()
    if "-----BEGIN" not in pem:
        raise ValueError("not a PEM document")
    return pem + "\n"


def parse_pem_list(raw: str) -> list[str]:
    """Split concatenated PEM RSA public keys; raises ValueError naming one that does not load."""
    pem = raw.replace("\\n", "\n")
    marker = "-----END PUBLIC KEY-----"
    pems = [part.strip() + "\n" + marker + "\n" for part in pem.split(marker) if part.strip()]
    for number, one in enumerate(pems, start=1):
        try:
            key = serialization.load_pem_public_key(one.encode())
        except (ValueError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"key {number} of {len(pems)} is not a PEM RSA public key")
    return pems


class AuthSettings(CommonSettings):
    """Everything the auth service reads from its environment."""

    DATABASE_URL = database_url_var("auth")
    SERVICE_SECRET = service_secret_var("auth")
    SERVICE_CREDENTIAL_REQUIRED = SERVICE_CREDENTIAL_REQUIRED
    JWT_PRIVATE_KEY = EnvVar(
        "AUTH_JWT_PRIVATE_KEY",
        parse_pem,
        doc="PEM RSA private key that signs tokens (`make up` writes a development one to .env).",
        secret=True,
    )
    JWT_PREVIOUS_PUBLIC_KEYS = EnvVar(
        "AUTH_JWT_PREVIOUS_PUBLIC_KEYS",
        parse_pem_list,
        default=[],
        doc="PEM public keys of retired signing keys, still published in the JWKS (rotation).",
    )
    JWT_NEXT_PUBLIC_KEYS = EnvVar(
        "AUTH_JWT_NEXT_PUBLIC_KEYS",
        parse_pem_list,
        default=[],
        doc="PEM public keys of the next signing key, published in the JWKS one rollout before "
        "auth signs with it (rotation).",
    )
    ACCESS_TOKEN_TTL = EnvVar(
        "AUTH_ACCESS_TOKEN_TTL_SECONDS", int, default=900, doc="Access token lifetime."
    )
    REFRESH_TOKEN_TTL = EnvVar(
        "AUTH_REFRESH_TOKEN_TTL_SECONDS",
        int,
        default=30 * 24 * 3600,
        doc="Refresh token lifetime.",
    )
    SESSION_MAX_SECONDS = EnvVar(
        "AUTH_SESSION_MAX_SECONDS",
        int,
        default=30 * 24 * 3600,
        doc="Absolute lifetime of a login session: no refresh after it, however active.",
    )
    LOGIN_FREE_FAILURES = EnvVar(
        "AUTH_LOGIN_FREE_FAILURES",
        int,
        default=5,
        doc="Wrong passwords one client address may try on one account before it must wait.",
    )
    LOGIN_BACKOFF_SECONDS = EnvVar(
        "AUTH_LOGIN_BACKOFF_SECONDS",
        float,
        default=1.0,
        doc="The first wait after those; it doubles with every further failure (429).",
    )
    LOGIN_BACKOFF_MAX_SECONDS = EnvVar(
        "AUTH_LOGIN_BACKOFF_MAX_SECONDS",
        float,
        default=900.0,
        doc="The longest wait between attempts of one client on one account.",
    )
    PASSWORD_CHANGE_LIMIT_PER_ACCOUNT = EnvVar(
        "AUTH_PASSWORD_CHANGE_LIMIT_PER_ACCOUNT",
        default="5/minute;30/hour",
        doc="changePassword attempts allowed per account (each checks the current password).",
    )
    LOGIN_LIMIT_PER_IP = EnvVar(
        "AUTH_LOGIN_LIMIT_PER_IP",
        default="30/minute;300/hour",
        doc="Login attempts allowed per client IP.",
    )
    REGISTER_LIMIT_PER_IP = EnvVar(
        "AUTH_REGISTER_LIMIT_PER_IP",
        default="20/minute",
        doc="Registrations allowed per client IP.",
    )
    ARGON2_TIME_COST = EnvVar("AUTH_ARGON2_TIME_COST", int, default=3, doc="argon2id passes.")
    ARGON2_MEMORY_KIB = EnvVar(
        "AUTH_ARGON2_MEMORY_KIB", int, default=65536, doc="argon2id memory per hash (KiB)."
    )
    OIDC_PROVIDERS = EnvVar(
        "AUTH_OIDC_PROVIDERS",
        parse_oidc_providers,
        default={},
        doc='OpenID Connect providers users may sign in with, as JSON: `{"google": {"issuer": '
        '"https://accounts.google.com", "client_id": "…", "redirect_uris": ["https://app/cb"]}}` '
        "(optional per provider: `scopes`, `link_verified_email`; see README, Sign in with "
        "OpenID Connect).",
    )
    OIDC_CLIENT_SECRETS = EnvVar(
        "AUTH_OIDC_CLIENT_SECRETS",
        parse_oidc_client_secrets,
        default={},
        doc='Client secrets of the AUTH_OIDC_PROVIDERS, as JSON: `{"google": "…"}`.',
        secret=True,
    )
    OIDC_LOGIN_TTL = EnvVar(
        "AUTH_OIDC_LOGIN_TTL_SECONDS",
        parse_positive_int,
        default=600,
        doc="How long a started OpenID Connect sign-in (its state, nonce and PKCE verifier) "
        "may be finished.",
    )
    OIDC_HTTP_TIMEOUT = EnvVar(
        "AUTH_OIDC_HTTP_TIMEOUT_SECONDS",
        float,
        default=10.0,
        doc="Timeout of each request to an OpenID Connect provider (discovery, keys, token).",
    )

    def __init__(self, environ=None, **overrides) -> None:
        super().__init__(environ, **overrides)
        unknown = sorted(set(self.OIDC_CLIENT_SECRETS) - set(self.OIDC_PROVIDERS))
        missing = sorted(set(self.OIDC_PROVIDERS) - set(self.OIDC_CLIENT_SECRETS))
        if unknown or missing:
            raise ConfigError(
                "AUTH_OIDC_CLIENT_SECRETS must hold a secret for each AUTH_OIDC_PROVIDERS "
                f"entry: missing {missing}, unknown {unknown}"
            )
        if self.environment == "production":
            for provider in self.OIDC_PROVIDERS.values():
                provider.require_production_issuer()

    EMAIL_REQUEST_LIMIT_PER_IP = EnvVar(
        "AUTH_EMAIL_REQUEST_LIMIT_PER_IP",
        default="10/minute;60/hour",
        doc="Password reset and email verification requests allowed per client IP.",
    )
    EMAIL_REQUEST_LIMIT_PER_ACCOUNT = EnvVar(
        "AUTH_EMAIL_REQUEST_LIMIT_PER_ACCOUNT",
        default="3/10minutes;10/day",
        doc="Password reset (per email) and email verification (per user) requests allowed, so "
        "nobody can flood a mailbox.",
    )
    PASSWORD_RESET_TTL = EnvVar(
        "AUTH_PASSWORD_RESET_TTL_SECONDS",
        int,
        default=30 * 60,
        doc="How long a mailed password reset token stays usable.",
    )
    EMAIL_VERIFICATION_TTL = EnvVar(
        "AUTH_EMAIL_VERIFICATION_TTL_SECONDS",
        int,
        default=24 * 3600,
        doc="How long a mailed email verification token stays usable.",
    )
    PUBLIC_APP_URL = EnvVar(
        "AUTH_PUBLIC_APP_URL",
        default="http://localhost:3000",
        doc="Base URL of the web app that mailed links open "
        "(`<url>/reset-password?token=...`, `<url>/verify-email?token=...`).",
    )
    SMTP_HOST = EnvVar("AUTH_SMTP_HOST", default="127.0.0.1", doc="SMTP server of outgoing mail.")
    SMTP_PORT = EnvVar("AUTH_SMTP_PORT", int, default=25, doc="Port of the SMTP server.")
    SMTP_USERNAME = EnvVar(
        "AUTH_SMTP_USERNAME", default="", doc="SMTP login user (empty: no login)."
    )
    SMTP_PASSWORD = EnvVar(
        "AUTH_SMTP_PASSWORD", default="", doc="SMTP login password.", secret=True
    )
    SMTP_FROM = EnvVar(
        "AUTH_SMTP_FROM",
        default="Dockyard <no-reply@dockyard.localhost>",
        doc="From address of account mail; its domain also names the Message-IDs.",
    )
    SMTP_STARTTLS = EnvVar(
        "AUTH_SMTP_STARTTLS",
        parse_bool,
        default=False,
        doc="Upgrade the SMTP connection with STARTTLS before logging in (needed with a login "
        "over anything but loopback).",
    )
    SMTP_TIMEOUT = EnvVar(
        "AUTH_SMTP_TIMEOUT_SECONDS", float, default=30.0, doc="SMTP connect and command timeout."
    )
    MAIL_MAX_RETRIES = EnvVar(
        "AUTH_MAIL_MAX_RETRIES",
        int,
        default=10,
        doc="Times the mail worker retries a mail the SMTP server did not take.",
    )
    MAIL_RETRY_BACKOFF_SECONDS = EnvVar(
        "AUTH_MAIL_RETRY_BACKOFF_SECONDS",
        parse_countdown,
        default=2.0,
        doc="First retry delay of a mail; each later one doubles (with jitter).",
    )
    MAIL_RETRY_BACKOFF_MAX_SECONDS = EnvVar(
        "AUTH_MAIL_RETRY_BACKOFF_MAX_SECONDS",
        parse_countdown,
        default=600.0,
        doc="Longest delay between two tries of a mail.",
    )


class AccountDeletionSettings(Settings):
    """What auth's account-deletion saga reads: in the web process, the consumer and the sweep."""

    STEP_TIMEOUT = EnvVar(
        "AUTH_ACCOUNT_DELETION_STEP_TIMEOUT_SECONDS",
        float,
        default=300.0,
        doc="How long account deletion waits for files and tasks to confirm before asking again.",
    )
    STEP_ATTEMPTS = EnvVar(
        "AUTH_ACCOUNT_DELETION_STEP_ATTEMPTS",
        parse_positive_int,
        default=12,
        doc="Times it asks before the saga ends FAILED (`dockyard sagas retry` starts it again).",
    )
