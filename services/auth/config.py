"""Settings of the auth service, from the environment."""

from __future__ import annotations

from shared.config import CommonSettings, EnvVar, database_url_var


def parse_pem(raw: str) -> str:
    """Accept a PEM with real newlines or with `\\n` escapes (as .env files carry it)."""
    pem = raw.replace("\\n", "\n").strip()
    if "-----BEGIN" not in pem:
        raise ValueError("not a PEM document")
    return pem + "\n"


def parse_pem_list(raw: str) -> list[str]:
    """Split concatenated PEM public keys."""
    pem = raw.replace("\\n", "\n")
    marker = "-----END PUBLIC KEY-----"
    return [part.strip() + "\n" + marker + "\n" for part in pem.split(marker) if part.strip()]


class AuthSettings(CommonSettings):
    """Everything the auth service reads from its environment."""

    DATABASE_URL = database_url_var("auth")
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
    TRUSTED_PROXY_HOPS = EnvVar(
        "AUTH_TRUSTED_PROXY_HOPS",
        int,
        default=1,
        doc="X-Forwarded-For hops to trust (the gateway is one) when reading the client IP.",
    )
    ARGON2_TIME_COST = EnvVar("AUTH_ARGON2_TIME_COST", int, default=3, doc="argon2id passes.")
    ARGON2_MEMORY_KIB = EnvVar(
        "AUTH_ARGON2_MEMORY_KIB", int, default=65536, doc="argon2id memory per hash (KiB)."
    )
