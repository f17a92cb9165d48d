"""OpenID Connect providers: their settings, discovery document and keys, and the calls to them.

Requests go only to the configured issuer's discovery document and to the endpoints that
document names (authorization, token, JWKS); nothing a user sends chooses where a request goes.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.security import is_secure_transport
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata, get_well_known_url
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from shared.config import ConfigError

log = logging.getLogger("dockyard.auth.oidc")

PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
DEFAULT_SCOPES = ("openid", "email", "profile")
#: Signature algorithms an ID token may use: asymmetric ones only, so never `none`, and never an
#: HMAC keyed with the client secret (whoever holds the secret could then mint ID tokens).
ID_TOKEN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Clock skew tolerated on `exp`, `iat` and `nbf`.
LEEWAY_SECONDS = 60
#: How long a discovery document (and the keys fetched with it) is trusted before it is read again.
DISCOVERY_TTL_SECONDS = 3600.0
_PROVIDER_KEYS = {"issuer", "client_id", "redirect_uris", "scopes", "link_verified_email"}


class ProviderUnavailable(Exception):
    """The provider could not be reached, or answered something that is not OpenID Connect."""


class ProviderLoginRejected(Exception):
    """The provider refused the authorization code, or its ID token failed a check."""


@dataclass(frozen=True)
class ProviderConfig:
    """One provider as the operator configured it (its client secret is kept apart)."""

    name: str
    issuer: str
    client_id: str
    redirect_uris: frozenset[str]
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    #: Whether a first sign-in may join an existing account with the same email, when the
    #: provider says that email is verified (`email_verified: true`).
    link_verified_email: bool = True

    def require_production_issuer(self) -> None:
        """In production an issuer is an https URL of a public host (no loopback, no private IP)."""
        host = urlsplit(self.issuer).hostname or ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        internal = host == "localhost" or (
            address is not None
            and (address.is_loopback or address.is_private or address.is_link_local)
        )
        if not self.issuer.startswith("https://") or internal:
            raise ConfigError(
                f"AUTH_OIDC_PROVIDERS: {self.name}'s issuer must be an https URL of a public host "
                "in production"
            )


def _url(value: Any, what: str, *, secure: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a URL string")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.fragment:
        raise ValueError(f"{what} must be an absolute http(s) URL without a fragment: {value!r}")
    if secure and (parts.query or not is_secure_transport(value)):
        raise ValueError(f"{what} must be https (http only on loopback), without a query")
    return value


def _provider(name: str, entry: Any) -> ProviderConfig:
    if not PROVIDER_NAME.match(name):
        raise ValueError(f"provider name {name!r} must match {PROVIDER_NAME.pattern}")
    if not isinstance(entry, dict):
        raise ValueError(f"{name}: expected an object")
    unknown = set(entry) - _PROVIDER_KEYS
    if unknown:
        raise ValueError(f"{name}: unknown keys {sorted(unknown)}")
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError(f"{name}: client_id is required")
    redirect_uris = entry.get("redirect_uris")
    if not isinstance(redirect_uris, list) or not redirect_uris:
        raise ValueError(f"{name}: redirect_uris must be a non-empty list")
    scopes = entry.get("scopes", list(DEFAULT_SCOPES))
    if not isinstance(scopes, list) or "openid" not in scopes:
        raise ValueError(f"{name}: scopes must be a list including openid")
    link = entry.get("link_verified_email", True)
    if not isinstance(link, bool):
        raise ValueError(f"{name}: link_verified_email must be true or false")
    return ProviderConfig(
        name=name,
        issuer=_url(entry.get("issuer"), f"{name}: issuer", secure=True),
        client_id=client_id,
        redirect_uris=frozenset(
            _url(u, f"{name}: redirect URI", secure=False) for u in redirect_uris
        ),
        scopes=tuple(str(scope) for scope in scopes),
        link_verified_email=link,
    )


def parse_oidc_providers(raw: str) -> dict[str, ProviderConfig]:
    """Parse AUTH_OIDC_PROVIDERS: a JSON object of provider name -> settings."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object of provider name -> settings")
    return {name: _provider(name, entry) for name, entry in data.items()}


def parse_oidc_client_secrets(raw: str) -> dict[str, str]:
    """Parse AUTH_OIDC_CLIENT_SECRETS: a JSON object of provider name -> client secret."""
    data = json.loads(raw)
    if not isinstance(data, dict) or not all(
        isinstance(secret, str) and secret for secret in data.values()
    ):
        raise ValueError("expected a JSON object of provider name -> non-empty string")
    return data


def verify_id_token(
    id_token: str,
    *,
    keys: KeySet,
    algorithms: Collection[str],
    issuer: str,
    client_id: str,
    nonce: str,
    access_token: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Check an ID token's signature, issuer, audience, expiry and nonce; return its claims.

    Raises ProviderLoginRejected, or joserfc's InvalidKeyIdError when no key has the token's
    `kid` (the caller may fetch the provider's keys again: they rotate).
    """
    if not nonce:
        raise ValueError("a nonce is required: without one Authlib skips the nonce check")
    registry = JWSRegistry(algorithms=sorted(algorithms), strict_check_header=False)
    try:
        token = jwt.decode(id_token, keys, registry=registry)
    except InvalidKeyIdError:
        raise
    except (JoseError, ValueError, TypeError) as exc:
        raise ProviderLoginRejected(f"ID token not verified: {type(exc).__name__}") from None
    claims = CodeIDToken(
        token.claims,
        token.header,
        {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
            "nonce": {"essential": True, "value": nonce},
            "sub": {"essential": True},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    try:
        claims.validate(now=now, leeway=LEEWAY_SECONDS)
    except (JoseError, ValueError, TypeError) as exc:
        raise ProviderLoginRejected(f"ID token refused: {exc}") from None
    # OpenID Connect Core 1.0 section 2: at most 255 ASCII characters (the identities column).
    if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 255:
        raise ProviderLoginRejected("ID token refused: subject empty or over 255 characters")
    return dict(claims)


class OidcProvider:
    """One configured provider: discovery and keys (cached), authorization URLs, code exchange."""

    def __init__(self, config: ProviderConfig, *, client_secret: str, timeout: float) -> None:
        self.config = config
        self._client_secret = client_secret
        self._timeout = timeout
        self._lock = threading.Lock()
        self._metadata: OpenIDProviderMetadata | None = None
        self._metadata_read_at = 0.0
        self._keys: KeySet | None = None

    @property
    def name(self) -> str:
        """The provider's name in settings and in the API."""
        return self.config.name

    def _get_json(self, url: str) -> Any:
        try:
            # No redirects: a request goes to the URL the issuer's own document names, or nowhere.
            response = requests.get(url, timeout=self._timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"{self.name}: {url} unreachable: {exc}") from None
        if response.status_code != 200:
            raise ProviderUnavailable(f"{self.name}: {url} answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise ProviderUnavailable(f"{self.name}: {url} answered no JSON") from None

    def metadata(self) -> OpenIDProviderMetadata:
        """The issuer's discovery document, validated, read again once it is an hour old."""
        with self._lock:
            fresh = time.monotonic() - self._metadata_read_at < DISCOVERY_TTL_SECONDS
            if self._metadata is not None and fresh:
                return self._metadata
            document = self._get_json(get_well_known_url(self.config.issuer, external=True))
            metadata = OpenIDProviderMetadata(document if isinstance(document, dict) else {})
            try:
                metadata.validate()
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise ProviderUnavailable(f"{self.name}: bad discovery document: {exc}") from None
            # OpenID Connect Discovery 1.0 section 4.3: the document must name the very issuer.
            if metadata["issuer"] != self.config.issuer:
                raise ProviderUnavailable(
                    f"{self.name}: discovery names issuer {metadata['issuer']!r}, "
                    f"configured {self.config.issuer!r}"
                )
            self._metadata, self._metadata_read_at, self._keys = metadata, time.monotonic(), None
            return metadata

    def _key_set(self, *, reload: bool = False) -> KeySet:
        metadata = self.metadata()
        with self._lock:
            if self._keys is None or reload:
                document = self._get_json(metadata["jwks_uri"])
                try:
                    self._keys = KeySet.import_key_set(document)
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    raise ProviderUnavailable(f"{self.name}: bad JWKS: {exc}") from None
            return self._keys

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        """The URL that sends the user to the provider (code flow, PKCE S256, state, nonce)."""
        metadata = self.metadata()
        client = OAuth2Session(
            self.config.client_id,
            scope=" ".join(self.config.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )
        url, _state = client.create_authorization_url(
            metadata["authorization_endpoint"],
            state=state,
            code_verifier=code_verifier,
            nonce=nonce,
        )
        return url

    def _token_auth_method(self, metadata: Mapping[str, Any]) -> str:
        # The spec's default is client_secret_basic; some providers take the secret only in the
        # body.
        supported = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return "client_secret_basic" if "client_secret_basic" in supported else "client_secret_post"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """Trade an authorization code (and the PKCE verifier) for the provider's tokens."""
        metadata = self.metadata()
        with OAuth2Session(
            self.config.client_id,
            self._client_secret,
            token_endpoint_auth_method=self._token_auth_method(metadata),
            redirect_uri=redirect_uri,
            default_timeout=self._timeout,
        ) as client:
            try:
                token = client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                    allow_redirects=False,
                )
            except OAuthError as exc:
                if exc.error in {"server_error", "temporarily_unavailable"}:
                    raise ProviderUnavailable(f"{self.name}: token endpoint: {exc.error}") from None
                raise ProviderLoginRejected(
                    f"token endpoint refused the code: {exc.error}"
                ) from None
            except requests.RequestException as exc:
                raise ProviderUnavailable(
                    f"{self.name}: token endpoint unreachable: {exc}"
                ) from None
            except ValueError:
                raise ProviderUnavailable(f"{self.name}: token endpoint answered no JSON") from None
        if not isinstance(token.get("id_token"), str):
            raise ProviderLoginRejected("the provider answered without an ID token")
        return dict(token)

    def verify_id_token(self, id_token: str, *, nonce: str, access_token: str | None) -> dict:
        """Verify an ID token against this provider's keys, fetching them again on a new key id."""
        metadata = self.metadata()
        algorithms = ID_TOKEN_ALGORITHMS & set(metadata["id_token_signing_alg_values_supported"])
        if not algorithms:
            raise ProviderUnavailable(f"{self.name}: no supported ID token algorithm")
        checks = {
            "algorithms": algorithms,
            "issuer": self.config.issuer,
            "client_id": self.config.client_id,
            "nonce": nonce,
            "access_token": access_token,
        }
        try:
            return verify_id_token(id_token, keys=self._key_set(), **checks)
        except InvalidKeyIdError:
            pass
        try:
            return verify_id_token(id_token, keys=self._key_set(reload=True), **checks)
        except InvalidKeyIdError:
            raise ProviderLoginRejected("ID token signed with an unknown key") from None


class OidcProviders:
    """The configured providers by name."""

    def __init__(self, providers: Mapping[str, OidcProvider]) -> None:
        self._providers = dict(providers)

    @classmethod
    def from_settings(cls, settings: Any) -> OidcProviders:
        """Every provider of AUTH_OIDC_PROVIDERS with its secret from AUTH_OIDC_CLIENT_SECRETS."""
        return cls(
            {
                name: OidcProvider(
                    config,
                    client_secret=settings.OIDC_CLIENT_SECRETS[name],
                    timeout=settings.OIDC_HTTP_TIMEOUT,
                )
                for name, config in settings.OIDC_PROVIDERS.items()
            }
        )

    def names(self) -> list[str]:
        """The providers' names, sorted."""
        return sorted(self._providers)

    def get(self, name: str) -> OidcProvider | None:
        """The provider called `name`, if configured."""
        return self._providers.get(name)
