"""Service-to-service identity: each caller signs with a key of its own, each service checks it.

A credential is a short-lived HS256 JWT naming its caller (`iss`, `dockyard-<caller>`) and the
called service (`aud`), signed with a secret only that (caller, callee) pair holds:

- The gateway signs with the called service's `<SERVICE>_SERVICE_SECRET`, held by that service
  and the gateway only. Its credential carries the client address the gateway saw (`fwd`) and
  may name a user the gateway acts for (`obo`, for a signed download link that carries no
  token; only views decorated with `shared.auth.authenticated_or_delegated` accept that).
- A peer service signs with `<CALLER>_TO_<CALLEE>_SECRET` (PEER_CALLS), held by the callee and
  the caller's processes that make the call only. Its credential carries neither `fwd` nor `obo`
  (one that does is invalid): a peer acts for no client and no user.

Which caller a view accepts is the view's to say: every view accepts the gateway's credential
except those decorated with `service_credential_required(callers=...)`, which accept exactly the
callers they name; a peer's credential is refused (403 SERVICE_CALLER_NOT_ALLOWED) on any view
that does not name it. So a compromised peer can reach only the internal endpoints meant for it,
never a public endpoint, and never as the gateway or for a user.

A service takes the client address from the gateway's signed claim only: X-Forwarded-For from
anyone is dropped, so otherwise the address is the socket peer's. In production (or when
SERVICE_CREDENTIAL_REQUIRED is on) a call without a credential is refused with 401.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from shared.config import ConfigError, EnvVar, parse_bool

if TYPE_CHECKING:
    # Only the services' side needs Flask; the gateway imports this module for its settings.
    from flask import Flask

log = logging.getLogger("dockyard.service_identity")

#: The request header that carries the credential.
HEADER = "X-Service-Token"
_ENVIRON_KEY = "HTTP_" + HEADER.upper().replace("-", "_")
#: The caller name of the gateway, the only caller that may forward a client or act for a user.
GATEWAY = "gateway"
_ISSUER_PREFIX = "dockyard-"
_ALGORITHM = "HS256"
#: Seconds a credential is valid; the gateway reuses one for half of that.
TOKEN_TTL = 60
#: Seconds of clock difference between the gateway's host and a service's that are forgiven.
_LEEWAY = 10
#: Where ServiceIdentityMiddleware leaves the user a valid credential acts for (WSGI environ).
DELEGATED_USER_KEY = "dockyard.delegated_user"
#: Set in the WSGI environ of a call that carried a valid credential: the caller's name.
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
#: Error code of a valid credential whose caller the endpoint does not accept (403).
CALLER_NOT_ALLOWED = "SERVICE_CALLER_NOT_ALLOWED"


def parse_secret(raw: str) -> str:
    """A secret long enough to sign with (32 characters or more)."""
    if len(raw) < _MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {_MIN_SECRET_LENGTH} characters")
    return raw


def service_secret_var(service: str) -> EnvVar:
    """The `<SERVICE>_SERVICE_SECRET` variable: the key the gateway signs calls to it with."""
    return EnvVar(
        f"{service.upper()}_SERVICE_SECRET",
        parse_secret,
        default=f"development-only-{service}-service-secret-placeholder",
        doc=f"Shared by the {service} service and the gateway only: signs the gateway's calls to "
        "it (32+ characters, e.g. `openssl rand -hex 32`).",
        secret=True,
        dev_only_default=True,
    )


#: The calls services make to each other, (caller, callee), with who makes them.
PEER_CALLS = {
    ("tasks", "files"): "the tasks launcher and worker, which fetch a task's input file",
    ("files", "tasks"): "the files worker, which pulls a finished task's outputs",
}


def peer_secret_var(caller: str, callee: str) -> EnvVar:
    """The `<CALLER>_TO_<CALLEE>_SECRET` variable: the key a peer signs its calls to callee with."""
    return EnvVar(
        f"{caller.upper()}_TO_{callee.upper()}_SECRET",
        parse_secret,
        default=f"development-only-{caller}-to-{callee}-secret-placeholder",
        doc=f"Held only by the {callee} service and {PEER_CALLS[(caller, callee)]}: signs "
        f"those calls, which only the {callee} service's internal endpoints for {caller} serve. "
        "Different from every other secret (32+ characters, e.g. `openssl rand -hex 32`).",
        secret=True,
        dev_only_default=True,
    )


SERVICE_CREDENTIAL_REQUIRED = EnvVar(
    "SERVICE_CREDENTIAL_REQUIRED",
    parse_bool,
    default=None,
    doc="REST services refuse (401) calls without a service credential; unset means "
    "on when DOCKYARD_ENV=production. Probes, /metrics, docs and the JWKS stay open.",
)


class ServiceCredentials:
    """A caller's side: mints its credential for a call to a service (the gateway's by default).

    `secrets` holds the key of each (this caller, service) pair, by service.
    """

    def __init__(
        self, secrets: Mapping[str, str], *, caller: str = GATEWAY, ttl: int = TOKEN_TTL
    ) -> None:
        self._secrets = dict(secrets)
        self.caller = caller
        self._ttl = ttl
        self._cache: dict[tuple[str, str | None, str | None], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token_for(
        self, service: str, client_address: str | None, *, on_behalf_of: str | None = None
    ) -> str:
        """A credential for `service` carrying `client_address`, reused for half its lifetime.

        `on_behalf_of` names the user the call acts for, when the gateway has no token of theirs.
        Only the gateway forwards a client or acts for a user: a peer's credential carries neither.
        """
        if self.caller != GATEWAY and (client_address or on_behalf_of):
            raise ValueError(f"the {self.caller} service's credential names no client or user")
        key = (service, client_address, on_behalf_of)
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        claims: dict[str, Any] = {
            "iss": _ISSUER_PREFIX + self.caller,
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


@dataclass(frozen=True)
class VerifiedCredential:
    """What a valid credential says: who calls, for which client address and which user."""

    caller: str
    address: str | None
    user: str | None


class CredentialCheck:
    """A service's side: verifies a caller's credential with that caller's key."""

    def __init__(
        self, service: str, secret: str, *, peers: Mapping[str, str] | None = None
    ) -> None:
        """`secret` is the gateway's key for `service`; `peers` the key of each peer caller."""
        self.service = service
        self._secrets = {**(peers or {}), GATEWAY: secret}
        if len(set(self._secrets.values())) < len(self._secrets):
            # A peer holding the gateway's key (or another peer's) could sign as that caller.
            raise ConfigError(f"each caller of the {service} service needs a secret of its own")
        # Most credentials arrive already checked (a caller reuses one for half its lifetime);
        # an HMAC check costs about as much as a simple view does.
        self._verified: dict[str, tuple[VerifiedCredential, float]] = {}

    def forwarded_address(self, token: str) -> str | None:
        """The client address the credential carries (None if none); raise CredentialInvalid."""
        return self.verify(token).address

    def verify(self, token: str) -> VerifiedCredential:
        """The caller, client address and user of a valid credential; raise CredentialInvalid."""
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        credential, expires = self._verify(token)
        if len(self._verified) >= 4096:
            self._verified.clear()
        self._verified[token] = (credential, expires)
        return credential

    def _caller(self, token: str) -> str:
        # Only picks the key to check with: the signature check below binds the issuer to it.
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as exc:
            raise CredentialInvalid(str(exc)) from None
        if not (isinstance(issuer, str) and issuer.startswith(_ISSUER_PREFIX)):
            raise CredentialInvalid("no Dockyard issuer")
        caller = issuer[len(_ISSUER_PREFIX) :]
        if caller not in self._secrets:
            raise CredentialInvalid(f"{issuer} is no caller of the {self.service} service")
        return caller

    def _verify(self, token: str) -> tuple[VerifiedCredential, float]:
        caller = self._caller(token)
        try:
            claims = jwt.decode(
                token,
                self._secrets[caller],
                algorithms=[_ALGORITHM],
                audience=self.service,
                issuer=_ISSUER_PREFIX + caller,
                leeway=_LEEWAY,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise CredentialInvalid(str(exc)) from None
        if caller != GATEWAY and ("fwd" in claims or "obo" in claims):
            raise CredentialInvalid(f"the {caller} service's credential names a client or user")
        address, user = claims.get("fwd"), claims.get("obo")
        credential = VerifiedCredential(
            caller=caller,
            address=address if isinstance(address, str) and address else None,
            user=user if isinstance(user, str) and user else None,
        )
        return credential, claims["exp"] + _LEEWAY


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
            credential = self.check.verify(token)
        except CredentialInvalid as exc:
            return self._refuse(environ, start_response, CREDENTIAL_INVALID, str(exc))
        environ[VERIFIED_KEY] = credential.caller
        if credential.user is not None:
            environ[DELEGATED_USER_KEY] = credential.user
        if credential.address is not None:
            environ["dockyard.socket_peer"] = environ.get("REMOTE_ADDR")
            environ["REMOTE_ADDR"] = credential.address
        return self.wsgi_app(environ, start_response)


def init_service_identity(
    app: Flask, settings: Any, *, service: str, peers: Mapping[str, str] | None = None
) -> None:
    """Check callers' credentials on every call to `app` (the one-line hook of app.py).

    `peers` holds the key of each peer service that calls `app` (PEER_CALLS), by caller.
    """
    required = settings.SERVICE_CREDENTIAL_REQUIRED
    if required is None:
        required = settings.environment == "production"
    check = CredentialCheck(service, settings.SERVICE_SECRET, peers=peers)
    app.wsgi_app = ServiceIdentityMiddleware(app.wsgi_app, check, required=required)
    # First of all hooks: a peer's call goes no further than this unless its view names it.
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_undeclared_peer)


def _accepted_callers(view: Callable | None) -> frozenset[str]:
    return getattr(view, "service_callers", frozenset({GATEWAY}))


def _refuse_caller(caller: str) -> None:
    from flask_smorest import abort

    abort(
        403,
        message=f"This endpoint does not accept the {caller} service's credential.",
        code=CALLER_NOT_ALLOWED,
    )


def _refuse_undeclared_peer() -> None:
    """Refuse a peer's credential on a view that does not name that peer (403)."""
    from flask import current_app, request

    caller = request.environ.get(VERIFIED_KEY)
    if caller is None or caller == GATEWAY:
        return
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None or caller not in _accepted_callers(view):
        _refuse_caller(caller)


def service_credential_required(
    view: Callable | None = None, *, callers: Iterable[str] = (GATEWAY,)
) -> Callable:
    """Serve a view only to a valid credential of one of `callers` (401 without, 403 another's).

    For internal endpoints that no client may reach whatever SERVICE_CREDENTIAL_REQUIRED says
    (e.g. files serving a leased input file to the tasks service's start jobs). Used bare, it
    accepts the gateway only; `callers={"tasks"}` accepts the tasks service's credential only.
    """
    accepted = frozenset(callers)

    def decorate(view: Callable) -> Callable:
        from flask import request
        from flask_smorest import abort

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = request.environ.get(VERIFIED_KEY)
            if not caller:
                abort(401, message=_REFUSALS[CREDENTIAL_REQUIRED], code=CREDENTIAL_REQUIRED)
            if caller not in accepted:
                _refuse_caller(caller)
            return view(*args, **kwargs)

        wrapper.service_callers = accepted  # type: ignore[attr-defined]
        return wrapper

    return decorate(view) if view is not None else decorate
