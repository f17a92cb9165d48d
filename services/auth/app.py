"""The auth service's app factory: the only wiring point."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import redis
from flask import Flask, g
from flask.globals import request_ctx
from sqlalchemy.engine import Engine

from services.auth.account_api import blp as accounts_blp
from services.auth.api import blp, limiter
from services.auth.config import AuthSettings
from services.auth.deletion import auth_sagas
from services.auth.deny_list import AuthRevocations, DenyListKeeper
from services.auth.keys import SigningKeys
from services.auth.login_throttle import LoginThrottle
from services.auth.models import SCHEMA, messaging_tables
from services.auth.oidc_api import oidc_blp
from services.auth.oidc_providers import OidcProviders
from services.auth.passwords import PasswordHasher
from services.auth.tokens import FlaskJwtIssuer
from services.auth.user_reads import UserById
from shared.auth import StaticKeys, TokenVerifier, init_jwt
from shared.db import UnitOfWork, make_engine, make_read_engine, session_factory
from shared.health import broker_check, database_check, redis_check
from shared.outbox.metrics import OutboxCollector
from shared.plugins_api import plugins_blueprint
from shared.sagas.metrics import SagaCollector
from shared.service_identity import init_service_identity
from shared.web import create_service_app, error_response

#: How long this process reuses a "not revoked" answer: the contract gives a revocation 2 s to
#: reach every service, and a Redis round trip per request cost `me` a quarter of its CPU.
NOT_REVOKED_CACHE_SECONDS = 1.0


@dataclass
class AuthContext:
    """What the views need, built once per app."""

    settings: AuthSettings
    engine: Engine
    uow: partial
    read_engine: Engine
    read_user: UserById
    hasher: PasswordHasher
    issuer: FlaskJwtIssuer
    keys: SigningKeys
    revocations: AuthRevocations
    deny_list: DenyListKeeper
    login_throttle: LoginThrottle
    oidc: OidcProviders


def create_app(settings: AuthSettings | None = None) -> Flask:
    """Build the auth service."""
    settings = settings or AuthSettings()
    engine = make_engine(settings.DATABASE_URL, schema=SCHEMA)
    revocations = AuthRevocations.from_url(
        settings.REDIS_URL,
        namespace=settings.NAMESPACE,
        access_ttl=settings.ACCESS_TOKEN_TTL,
        not_revoked_cache_seconds=NOT_REVOKED_CACHE_SECONDS,
    )
    keys = SigningKeys.load(
        settings.JWT_PRIVATE_KEY, settings.JWT_PREVIOUS_PUBLIC_KEYS, settings.JWT_NEXT_PUBLIC_KEYS
    )
    app, api = create_service_app(
        "auth",
        settings,
        title="Dockyard auth",
        collectors=[
            OutboxCollector(engine, messaging_tables.outbox, source="auth"),
            SagaCollector(engine, auth_sagas()),
        ],
        readiness_checks={
            "database": database_check(engine),
            "broker": broker_check(settings.AMQP_URL),
            "redis": redis_check(revocations.client),
        },
    )
    init_service_identity(app, settings, service="auth")
    verifier = TokenVerifier(
        StaticKeys(keys.public_keys),
        revocations,
        issuer=settings.JWT_ISSUER,
        audience=settings.JWT_AUDIENCE,
    )
    init_jwt(app, verifier)
    issuer = FlaskJwtIssuer(
        keys, access_ttl=settings.ACCESS_TOKEN_TTL, refresh_ttl=settings.REFRESH_TOKEN_TTL
    )
    issuer.configure(app)
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.REDIS_URL,
        RATELIMIT_KEY_PREFIX=f"{settings.NAMESPACE}:ratelimit",
        RATELIMIT_STRATEGY="moving-window",
        RATELIMIT_HEADERS_ENABLED=True,
    )

    @app.after_request
    def _retry_after_only_when_limited(response):
        # flask-limiter sends Retry-After on every limited route (its window's reset); it means
        # something only on 429, and on a throttled login the throttle's wait is the true one.
        if response.status_code != 429 and "Retry-After" in response.headers:
            del response.headers["Retry-After"]
        elif "login_retry_after" in g:
            response.headers["Retry-After"] = str(g.login_retry_after)
        return response

    limiter.init_app(app)
    # flask-limiter also checks every request in a before_request hook, for app-wide and
    # blueprint limits. This service has none: its limits decorate the login and register views,
    # whose wrappers check them. The hook cost `me` more CPU than its database query.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    _limiter_hooks_only_where_it_ran(app)
    read_engine = make_read_engine(settings.DATABASE_URL, schema=SCHEMA)
    deny_list = DenyListKeeper(engine, revocations, access_ttl=settings.ACCESS_TOKEN_TTL)
    revocations.when_not_ready = deny_list.rebuild_if_missing
    app.extensions["auth"] = AuthContext(
        settings=settings,
        engine=engine,
        uow=partial(UnitOfWork, session_factory(engine), schema=SCHEMA, source="auth"),
        read_engine=read_engine,
        read_user=UserById(read_engine),
        hasher=PasswordHasher(
            time_cost=settings.ARGON2_TIME_COST, memory_kib=settings.ARGON2_MEMORY_KIB
        ),
        issuer=issuer,
        keys=keys,
        revocations=revocations,
        oidc=OidcProviders.from_settings(settings),
        deny_list=deny_list.start(),
        login_throttle=LoginThrottle(
            revocations.client,
            namespace=settings.NAMESPACE,
            free_failures=settings.LOGIN_FREE_FAILURES,
            base_delay=settings.LOGIN_BACKOFF_SECONDS,
            max_delay=settings.LOGIN_BACKOFF_MAX_SECONDS,
        ),
    )

    @app.errorhandler(redis.RedisError)
    def _redis_down(_exc: redis.RedisError):
        return error_response(503, "Authentication is temporarily unavailable.")

    api.register_blueprint(blp)
    api.register_blueprint(oidc_blp)
    api.register_blueprint(accounts_blp)
    # Auth loads no plugin kind of its own: its list is empty, answered like the others'.
    api.register_blueprint(plugins_blueprint(()))
    return app


def _limiter_hooks_only_where_it_ran(app: Flask) -> None:
    """Skip flask-limiter's after-request and teardown hooks on requests no limit looked at.

    Both start by creating the limiter's per-request state, which only a limited view's wrapper
    needs; on `me` that was a visible share of the request.
    """

    def limiter_ran() -> bool:
        return hasattr(request_ctx, "_limiter_request_context")

    def guarded_after(hook):
        return lambda response: hook(response) if limiter_ran() else response

    def guarded_teardown(hook):
        return lambda exc=None: hook(exc) if limiter_ran() else None

    app.after_request_funcs[None] = [
        guarded_after(hook) if _belongs_to_limiter(hook) else hook
        for hook in app.after_request_funcs[None]
    ]
    app.teardown_request_funcs[None] = [
        guarded_teardown(hook) if _belongs_to_limiter(hook) else hook
        for hook in app.teardown_request_funcs[None]
    ]


def _belongs_to_limiter(hook) -> bool:
    owner = (
        hook.args[0] if isinstance(hook, partial) and hook.args else getattr(hook, "__self__", None)
    )
    return owner is limiter
