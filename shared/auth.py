"""Access-token verification every service shares: JWKS public keys plus the revocation list."""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import redis
import requests
from flask import current_app, g, request

from shared.service_identity import DELEGATED_USER_KEY

log = logging.getLogger(__name__)


class TokenInvalid(Exception):
    """The token is missing, malformed, expired, tampered with or revoked."""

    #: What the 401 answer says (the detail in str(exc) is for logs and the gateway's errors).
    public_message = "Token is invalid."


class TokenMissing(TokenInvalid):
    """No bearer token came with the request."""

    public_message = "Missing bearer token."


class TokenExpired(TokenInvalid):
    """The token's `exp` has passed."""

    public_message = "Token has expired."


class TokenRevoked(TokenInvalid):
    """The token, or its refresh family, was revoked (logout, refresh-token reuse)."""

    public_message = "Token has been revoked."


class TokenSubjectInvalid(TokenInvalid):
    """A correctly signed token whose subject is not a user id."""

    public_message = "Token's subject is not a user id."


class RevocationUnavailable(Exception):
    """The revocation list cannot be read; callers fail closed."""


class DenyListNotReady(RevocationUnavailable):
    """Redis has no "deny-list ready" marker: it lost its keys and auth has not rebuilt them."""


class RevocationList:
    """Revoked token ids and token families in Redis, each kept as long as a token could live.

    Redis keeps no copy on disk, so a restart forgets every revocation. Auth's database is the
    record: auth rebuilds the list from it and then sets a "ready" marker, and an answer is only
    trusted while that marker is there; without it the list is unavailable (callers fail closed,
    503) until auth has rebuilt it. `when_not_ready` (auth passes its rebuild) runs first.

    With `not_revoked_cache_seconds` > 0 a "not revoked" answer is reused for that long in this
    process (the contract allows a revocation up to 2 s to reach every service); `revoke` through
    this same object forgets them at once, so the process that revokes never sees a stale answer.
    """

    #: Cached answers kept at most; past it the cache starts over (it refills in one round trip).
    max_cached = 10_000

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str,
        not_revoked_cache_seconds: float = 0.0,
        when_not_ready: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.prefix = f"{namespace}:revoked"
        self.ready_key = f"{self.prefix}:ready"
        self.not_revoked_cache_seconds = not_revoked_cache_seconds
        self.when_not_ready = when_not_ready
        #: (jti, family) -> monotonic time until which "not revoked" may be reused
        self._not_revoked: dict[tuple[Any, Any], float] = {}
        #: Bumped by every revoke, so an answer read before a revocation is not cached after it.
        self._generation = 0

    @classmethod
    def from_url(cls, url: str, *, namespace: str, **options: Any) -> RevocationList:
        """Connect with short timeouts so an outage is noticed, not waited on."""
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return cls(client, namespace=namespace, **options)

    def revoke(self, *, jti: str | None = None, family: str | None = None, ttl: int) -> None:
        """Mark a token id and/or a whole family revoked for `ttl` seconds."""
        ttl = max(int(ttl), 1)
        with self.client.pipeline(transaction=False) as pipe:
            if jti:
                pipe.set(f"{self.prefix}:jti:{jti}", 1, ex=ttl)
            if family:
                pipe.set(f"{self.prefix}:fam:{family}", 1, ex=ttl)
            pipe.execute()
        self.forget_cached()

    def forget_cached(self) -> None:
        """Drop every cached "not revoked" answer of this process."""
        self._generation += 1
        self._not_revoked.clear()

    def is_ready(self) -> bool:
        """Whether the list is whole: the ready marker is there (raises redis errors)."""
        return bool(self.client.exists(self.ready_key))

    def restore(self, *, families: dict[str, int], token_ids: dict[str, int]) -> None:
        """Write revocations (id -> seconds left) and the ready marker in one transaction.

        One MULTI/EXEC: a Redis that restarts meanwhile ends up with all of it or none of it,
        never with the marker but without the entries.
        """
        with self.client.pipeline(transaction=True) as pipe:
            for family, ttl in families.items():
                pipe.set(f"{self.prefix}:fam:{family}", 1, ex=max(int(ttl), 1))
            for jti, ttl in token_ids.items():
                pipe.set(f"{self.prefix}:jti:{jti}", 1, ex=max(int(ttl), 1))
            pipe.set(self.ready_key, 1)
            pipe.execute()
        self.forget_cached()

    def is_revoked(self, claims: dict[str, Any]) -> bool:
        """Whether the token's id or its family has been revoked (DenyListNotReady: unknown)."""
        cache_key = (claims.get("jti"), claims.get("fam"))
        if self.not_revoked_cache_seconds > 0:
            until = self._not_revoked.get(cache_key)
            if until is not None and until > time.monotonic():
                return False
        generation = self._generation
        keys = [self.ready_key, f"{self.prefix}:jti:{cache_key[0]}"]
        if cache_key[1]:
            keys.append(f"{self.prefix}:fam:{cache_key[1]}")
        try:
            ready, *entries = self.client.mget(keys)
            if ready is None and self.when_not_ready is not None:
                self.when_not_ready()
                ready, *entries = self.client.mget(keys)
        except redis.RedisError as exc:
            raise RevocationUnavailable(str(exc)) from exc
        if ready is None:
            raise DenyListNotReady("the revocation list has not been rebuilt since Redis lost it")
        revoked = any(entry is not None for entry in entries)
        if not revoked and self.not_revoked_cache_seconds > 0 and generation == self._generation:
            if len(self._not_revoked) >= self.max_cached:
                self._not_revoked.clear()
            self._not_revoked[cache_key] = time.monotonic() + self.not_revoked_cache_seconds
        return revoked


class JwksKeys:
    """Public keys by key id, fetched from the auth service's JWKS endpoint and cached."""

    def __init__(
        self, url: str, *, cache_seconds: int = 300, timeout: float = 3.0, ca_file: str = ""
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self._session = requests.Session()
        if ca_file:
            self._session.verify = ca_file

    def _refresh(self) -> None:
        response = self._session.get(self.url, timeout=self.timeout)
        response.raise_for_status()
        keys = {}
        for jwk in response.json().get("keys", []):
            keys[jwk["kid"]] = jwt.PyJWK.from_dict(jwk).key
        self._keys = keys
        self._fetched_at = time.monotonic()

    def get(self, kid: str) -> Any:
        """The key for `kid`; refetches when stale or unknown (at most once a second)."""
        with self._lock:
            age = time.monotonic() - self._fetched_at
            if age > self.cache_seconds or (kid not in self._keys and age > 1.0):
                try:
                    self._refresh()
                except (requests.RequestException, ValueError, KeyError) as exc:
                    log.warning("could not fetch JWKS from %s: %s", self.url, exc)
            if kid not in self._keys:
                raise TokenInvalid("unknown signing key")
            return self._keys[kid]


class StaticKeys:
    """Key lookup over keys already in hand (the auth service verifies with its own keys)."""

    def __init__(self, keys: dict[str, Any]) -> None:
        self._keys = keys

    def get(self, kid: str) -> Any:
        """The key for `kid`."""
        if kid not in self._keys:
            raise TokenInvalid("unknown signing key")
        return self._keys[kid]


class VerifiedTokens:
    """Claims of tokens whose signature, issuer, audience and expiry already checked out.

    Checking an RS256 token costs more than the rest of a simple request (PyJWT re-parses it with
    a per-character check, flask-jwt-extended four times per request), and a client sends the
    same token until it expires. So the claims are kept by the exact token string, until `exp`,
    and only while the key source still returns the same key for the token's `kid` (a retired
    key ends its tokens' entries). Revocation is never cached: callers check it every time.
    """

    def __init__(self, keys, *, max_entries: int = 10_000) -> None:
        self.keys = keys
        self.max_entries = max_entries
        #: token -> (claims, kid, the key it was verified with)
        self._entries: OrderedDict[str, tuple[dict[str, Any], str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _current_key(self, kid: str) -> Any:
        try:
            return self.keys.get(kid)
        except TokenInvalid:
            return None

    def get(self, token: str) -> dict[str, Any] | None:
        """A copy of the token's claims if it was verified and is still valid, else None."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        claims, kid, key = entry
        if claims["exp"] <= time.time() or self._current_key(kid) is not key:
            with self._lock:
                self._entries.pop(token, None)
            return None
        return dict(claims)

    def put(self, token: str, claims: dict[str, Any]) -> None:
        """Remember the claims of a token that was just verified in full."""
        if not isinstance(claims.get("exp"), int | float):
            return
        kid = jwt.get_unverified_header(token).get("kid") or ""
        key = self._current_key(kid)
        if key is None:
            return
        with self._lock:
            self._entries[token] = (dict(claims), kid, key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


@dataclass(frozen=True)
class Identity:
    """Who a verified access token speaks for."""

    user_id: str
    token_id: str
    family_id: str | None
    expires_at: int
    claims: dict[str, Any]

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Identity:
        """The identity a verified token's claims describe."""
        return cls(
            user_id=str(claims["sub"]),
            token_id=str(claims["jti"]),
            family_id=claims.get("fam"),
            expires_at=int(claims["exp"]),
            claims=claims,
        )


class TokenVerifier:
    """Verify RS256 access tokens locally and reject revoked ones."""

    algorithms = ("RS256",)

    def __init__(self, keys, revocations: RevocationList, *, issuer: str, audience: str) -> None:
        self.keys = keys
        self.revocations = revocations
        self.issuer = issuer
        self.audience = audience
        self.verified = VerifiedTokens(keys)

    def decode(self, token: str, *, expected_type: str = "access") -> dict[str, Any]:
        """Check signature, expiry, issuer, audience and type; return the claims."""
        claims = self.verified.get(token) or self._decode_in_full(token)
        if claims.get("type") != expected_type:
            raise TokenInvalid(f"not an {expected_type} token")
        return claims

    def _decode_in_full(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            if not kid:
                raise TokenInvalid("token has no key id")
            claims = jwt.decode(
                token,
                self.keys.get(kid),
                algorithms=list(self.algorithms),
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iat", "sub", "jti", "type"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("token has expired") from None
        except jwt.PyJWTError:
            raise TokenInvalid("token is invalid") from None
        self.verified.put(token, claims)
        return claims

    def verify(self, token: str) -> Identity:
        """Verify an access token, including revocation; raise TokenInvalid otherwise."""
        claims = self.decode(token)
        if self.revocations.is_revoked(claims):
            raise TokenRevoked("token has been revoked")
        return Identity.from_claims(claims)


def bearer_token(header_value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header_value:
        return None
    scheme, _, token = header_value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticated(view: Callable) -> Callable:
    """Run a view only for a verified, unrevoked bearer access token (401/503 otherwise).

    The app must have been set up with `init_jwt`. Inside the view, `current_identity()` and
    `caller_id()` say who called. An app with a users replica also admits the caller through it
    (`shared.user_replica.init_user_replica`), which refuses a deleted user with 401. Cheaper
    than flask-jwt-extended's `jwt_required()` (which parses the token again on every request),
    with the same answers for every failure.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise TokenMissing("no bearer token")
        g.identity = current_app.extensions["token_verifier"].verify(token)
        # A service keeping a user replica refuses users it knows were deleted (user_replica).
        gate = current_app.extensions.get("caller_gate")
        if gate is not None:
            gate(g.identity.user_id)
        return view(*args, **kwargs)

    return wrapper


def authenticated_or_delegated(view: Callable) -> Callable:
    """`authenticated`, or else the user a valid gateway credential acts for (signed links).

    Only for reads the gateway serves behind a link it signed itself (a file's content): the
    gateway checked the link, and the credential naming the user is signed with this service's
    secret, which no client holds.
    """
    authenticated_view = authenticated(view)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = request.environ.get(DELEGATED_USER_KEY)
        if user is None or request.headers.get("Authorization"):
            return authenticated_view(*args, **kwargs)
        g.identity = Identity(
            user_id=user, token_id="", family_id=None, expires_at=0, claims={"sub": user}
        )
        # A link outliving its user's account must not outlive it here either.
        gate = current_app.extensions.get("caller_gate")
        if gate is not None:
            gate(user)
        return view(*args, **kwargs)

    return wrapper


def current_identity() -> Identity:
    """Who the request's verified token speaks for, under `authenticated` or `jwt_required()`."""
    identity = g.get("identity")
    if identity is not None:
        return identity
    from flask_jwt_extended import get_jwt

    return Identity.from_claims(get_jwt())


def caller_id() -> uuid.UUID:
    """The authenticated caller's user id: the one way every service reads who is asking."""
    try:
        return uuid.UUID(current_identity().user_id)
    except ValueError:
        raise TokenSubjectInvalid("token's subject is not a user id") from None


def verifier_from_settings(settings) -> TokenVerifier:
    """A JWKS-backed verifier configured from CommonSettings."""
    return TokenVerifier(
        JwksKeys(
            settings.JWKS_URL,
            cache_seconds=settings.JWKS_CACHE_SECONDS,
            ca_file=settings.TLS_CA_FILE,
        ),
        RevocationList.from_url(settings.REDIS_URL, namespace=settings.NAMESPACE),
        issuer=settings.JWT_ISSUER,
        audience=settings.JWT_AUDIENCE,
    )


def init_jwt(app, verifier: TokenVerifier):
    """Configure flask-jwt-extended to verify with `verifier`'s keys and revocation list.

    Every REST service calls this, so `@jwt_required()` means the same thing everywhere and
    every token failure answers 401 in the shared error shape.
    """
    from flask_jwt_extended import JWTManager

    from shared.web import error_response

    class CachingJWTManager(JWTManager):
        """flask-jwt-extended, verifying each token's signature once (see VerifiedTokens)."""

        def _decode_jwt_from_config(self, encoded_token, csrf_value=None, allow_expired=False):
            if csrf_value is not None or allow_expired:
                return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
            claims = verifier.verified.get(encoded_token)
            if claims is None:
                claims = super()._decode_jwt_from_config(encoded_token)
                verifier.verified.put(encoded_token, claims)
            return claims

    app.config.update(
        JWT_ALGORITHM="RS256",
        JWT_DECODE_ALGORITHMS=list(verifier.algorithms),
        JWT_TOKEN_LOCATION=["headers"],
        JWT_DECODE_ISSUER=verifier.issuer,
        JWT_DECODE_AUDIENCE=verifier.audience,
        JWT_ERROR_MESSAGE_KEY="message",
    )
    manager = CachingJWTManager(app)
    app.extensions["token_verifier"] = verifier

    @manager.decode_key_loader
    def _decode_key(jwt_header, _unverified_claims):
        return verifier.keys.get(jwt_header.get("kid") or "")

    @manager.token_in_blocklist_loader
    def _is_revoked(_jwt_header, claims) -> bool:
        return verifier.revocations.is_revoked(claims)

    def unauthenticated(message: str):
        response = error_response(401, message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="dockyard"'
        return response

    manager.unauthorized_loader(lambda _reason: unauthenticated("Missing bearer token."))
    manager.invalid_token_loader(lambda _reason: unauthenticated("Token is invalid."))
    manager.expired_token_loader(lambda _h, _c: unauthenticated("Token has expired."))
    manager.revoked_token_loader(lambda _h, _c: unauthenticated("Token has been revoked."))

    @app.errorhandler(TokenInvalid)
    def _token_invalid(exc: TokenInvalid):
        return unauthenticated(exc.public_message)

    @app.errorhandler(RevocationUnavailable)
    def _revocations_down(_exc: RevocationUnavailable):
        log.error("revocation list unreachable; refusing tokens")
        return error_response(503, "Authentication is temporarily unavailable.")

    return manager
