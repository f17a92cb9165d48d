"""Service-to-service identity: the gateway signs each internal call, a service checks it.

Each REST service has a secret of its own (`<SERVICE>_SERVICE_SECRET`) which only it and the
gateway hold. The gateway sends, with every call, a short-lived HS256 JWT signed with the
called service's secret, naming the service (`aud`) and the client address it saw (`fwd`).
A service takes the client address from that signed claim only: X-Forwarded-For from anyone
is dropped, so without a valid credential the address is the socket peer's. A credential may
also name a user the gateway acts for (`obo`, for a signed download link that carries no
token); only views decorated with `shared.auth.authenticated_or_delegated` accept that.
In production (or when SERVICE_CREDENTIAL_REQUIRED is on) a call without a credential is refused
with 401.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import jwt

from shared.config import EnvVar, parse_bool

if TYPE_CHECKING:
    # Only the services' side needs Flask; the gateway imports this module for its settings.
    from flask import Flask

log = logging.getLogger("dockyard.service_identity")

#: The request header that carries the credential.
HEADER = "X-Service-Token"
_ENVIRON_KEY = "HTTP_" + HEADER.upper().replace("-", "_")
_ISSUER = "dockyard-gateway"
_ALGORITHM = "HS256"
#: Seconds a credential is valid; the gateway reuses one for half of that.
TOKEN_TTL = 60
#: Seconds of clock difference between the gateway's host and a service's that are forgiven.
_LEEWAY = 10
#: Where ServiceIdentityMiddleware leaves the user a valid credential acts for (WSGI environ).
DELEGATED_USER_KEY = "dockyard.delegated_user"
#: Set in the WSGI environ of a call that carried a valid credential.
VERIFIED_KEY = "dockyard.service_credential"
#: Paths served without a credential: probes, metrics, API docs and public signing keys.
EXEMPT_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/v1/.well-known/jwks.json"}
)
EXEMPT_PREFIXES = ("/docs/",)
_MIN_SECRET_LENGTH = 32
#: Error codes of a refused credential: the gateway's misconfiguration, never the client's fault.
CREDENTIAL_REQUIRED = "SERVICE_CREDENTIAL_REQUIRED"
CREDENTIAL_INVALID = "SERVICE_CREDENTIAL_INVALID"


def parse_secret(raw: str) -> str:
    """A secret long enough to sign with (32 characters or more)."""
    if len(raw) < _MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {_MIN_SECRET_LENGTH} characters")
    return raw


#: Who calls a service besides the gateway (they hold its secret too).
_CALLERS = {
    "files": "the gateway; the tasks launcher and worker, which fetch input files",
    "tasks": "the gateway; the files worker, which pulls task outputs",
}


def service_secret_var(service: str) -> EnvVar:
    """The `<SERVICE>_SERVICE_SECRET` variable: the key the gateway signs calls to it with."""
    return EnvVar(
        f"{service.upper()}_SERVICE_SECRET",
        parse_secret,
        default=f"development-only-{service}-service-secret-placeholder",
        doc=f"Shared by the {service} service and its callers only "
        f"({_CALLERS.get(service, 'the gateway')}): signs their calls to it (32+ characters, "
        "e.g. `openssl rand -hex 32`).",
        secret=True,
        dev_only_default=True,
    )


SERVICE_CREDENTIAL_REQUIRED = EnvVar(
    "SERVICE_CREDENTIAL_REQUIRED",
    parse_bool,
    default=None,
    doc="REST services refuse (401) calls without the gateway's service credential; unset means "
    "on when DOCKYARD_ENV=production. Probes, /metrics, docs and the JWKS stay open.",
)


class ServiceCredentials:
    """The gateway's side: mints the credential for a call to a service, on behalf of a client."""

    def __init__(self, secrets: Mapping[str, str], *, ttl: int = TOKEN_TTL) -> None:
        self._secrets = dict(secrets)
        self._ttl = ttl
        self._cache: dict[tuple[str, str | None, str | None], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token_for(
        self, service: str, client_address: str | None, *, on_behalf_of: str | None = None
    ) -> str:
        """A credential for `service` carrying `client_address`, reused for half its lifetime.

        `on_behalf_of` names the user the call acts for, when the gateway has no token of theirs.
        """
        key = (service, client_address, on_behalf_of)
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        claims: dict[str, Any] = {
            "iss": _ISSUER,
            "aud": service,
            "iat": int(now),
            "exp": int(now) + self._ttl,
        }
        if client_address:
            claims["fwd"] = client_address
        if on_behalf_of:
            claims["obo"] = on_behalf_of
        token = jwt.encode(claims, self._secrets[service], algorithm=_ALGORITHM)
        with self._lock:
            if len(self._cache) >= 10_000:
                # Expired and live alike: a burst of new addresses must not grow it unbounded.
                self._cache.clear()
            self._cache[key] = (token, now + self._ttl / 2)
        return token


class CredentialInvalid(Exception):
    """A service credential that is malformed, expired, or not signed for this service."""


class CredentialCheck:
    """A service's side: verifies the gateway's credential and yields the forwarded address."""

    def __init__(self, service: str, secret: str) -> None:
        self.service = service
        self._secret = secret
        # The gateway reuses a credential per client address, so most arrive already checked;
        # an HMAC check costs about as much as a simple view does.
        self._verified: dict[str, tuple[str | None, str | None, float]] = {}

    def forwarded_address(self, token: str) -> str | None:
        """The client address the credential carries (None if none); raise CredentialInvalid."""
        return self.verified_claims(token)[0]

    def verified_claims(self, token: str) -> tuple[str | None, str | None]:
        """(client address, user acted for) the credential carries; raise CredentialInvalid."""
        known = self._verified.get(token)
        if known is not None and known[2] > time.time():
            return known[0], known[1]
        address, user, expires = self._verify(token)
        if len(self._verified) >= 4096:
            self._verified.clear()
        self._verified[token] = (address, user, expires)
        return address, user

    def _verify(self, token: str) -> tuple[str | None, str | None, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=self.service,
                issuer=_ISSUER,
                leeway=_LEEWAY,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise CredentialInvalid(str(exc)) from None
        address, user = claims.get("fwd"), claims.get("obo")
        return (
            address if isinstance(address, str) and address else None,
            user if isinstance(user, str) and user else None,
            claims["exp"] + _LEEWAY,
        )


_REFUSALS = {
    CREDENTIAL_REQUIRED: "A service credential is required.",
    CREDENTIAL_INVALID: "The service credential is invalid.",
}


class ServiceIdentityMiddleware:
    """WSGI middleware: the client address from a valid credential, else the socket peer."""

    def __init__(
        self,
        wsgi_app: Callable[..., Iterable[bytes]],
        check: CredentialCheck,
        *,
        required: bool,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.check = check
        self.required = required

    def _refuse(
        self, environ: dict[str, Any], start_response: Callable, code: str, reason: str
    ) -> Iterable[bytes]:
        # Who tried and why, for operators; never the token itself.
        log.warning(
            "%s service refused a call without a valid service credential",
            self.check.service,
            extra={
                "client": environ.get("REMOTE_ADDR"),
                "path": environ.get("PATH_INFO"),
                "reason": reason,
            },
        )
        body = json.dumps({"status": 401, "code": code, "message": _REFUSALS[code]}).encode()
        start_response(
            "401 UNAUTHORIZED",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """Drop client-claimed forwarding headers; honour only the credential's address."""
        token = environ.pop(_ENVIRON_KEY, None)
        # Nobody's X-Forwarded-For is read downstream: the signed claim replaces it.
        environ.pop("HTTP_X_FORWARDED_FOR", None)
        path = environ.get("PATH_INFO", "")
        if path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            return self.wsgi_app(environ, start_response)
        if not token:
            if self.required:
                return self._refuse(environ, start_response, CREDENTIAL_REQUIRED, "missing")
            return self.wsgi_app(environ, start_response)
        try:
            address, user = self.check.verified_claims(token)
        except CredentialInvalid as exc:
            return self._refuse(environ, start_response, CREDENTIAL_INVALID, str(exc))
        environ[VERIFIED_KEY] = True
        if user is not None:
            environ[DELEGATED_USER_KEY] = user
        if address is not None:
            environ["dockyard.socket_peer"] = environ.get("REMOTE_ADDR")
            environ["REMOTE_ADDR"] = address
        return self.wsgi_app(environ, start_response)


def init_service_identity(app: Flask, settings: Any, *, service: str) -> None:
    """Check the gateway's credential on every call to `app` (the one-line hook of app.py)."""
    required = settings.SERVICE_CREDENTIAL_REQUIRED
    if required is None:
        required = settings.environment == "production"
    app.wsgi_app = ServiceIdentityMiddleware(
        app.wsgi_app, CredentialCheck(service, settings.SERVICE_SECRET), required=required
    )


def service_credential_required(view: Callable) -> Callable:
    """Serve `view` only to a call with a valid service credential (401 otherwise), always.

    For internal endpoints that no client may reach whatever SERVICE_CREDENTIAL_REQUIRED says
    (e.g. files serving a leased input file to the tasks service's start jobs).
    """
    import functools

    from flask import request
    from flask_smorest import abort

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not request.environ.get(VERIFIED_KEY):
            abort(401, message=_REFUSALS[CREDENTIAL_REQUIRED], code=CREDENTIAL_REQUIRED)
        return view(*args, **kwargs)

    return wrapper
