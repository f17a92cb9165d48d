"""REST endpoints of the auth service: thin views over service.py."""

from __future__ import annotations

import json

from flask import current_app, g
from flask.views import MethodView
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import abort

from services.auth import audit, service, sessions
from services.auth.schemas import (
    CredentialsSchema,
    JwksSchema,
    RefreshSchema,
    RegistrationSchema,
    TokensSchema,
    UserSchema,
    user_document,
)
from shared.auth import authenticated, caller_id, current_identity
from shared.web import ServiceBlueprint

blp = ServiceBlueprint("auth", __name__, url_prefix="/v1", description="Users and tokens")

limiter = Limiter(key_func=get_remote_address, headers_enabled=True)


def _ctx():
    return current_app.extensions["auth"]


def _setting(name: str):
    return lambda: getattr(current_app.extensions["auth"].settings, name)


@blp.route("/auth/register")
class Registration(MethodView):
    """Create an account."""

    decorators = [limiter.limit(_setting("REGISTER_LIMIT_PER_IP"), key_func=get_remote_address)]

    @blp.arguments(RegistrationSchema)
    @blp.response(201, TokensSchema)
    @blp.alt_response(409, description="Email already registered")
    def post(self, body):
        """Register a user and return their first token pair."""
        ctx = _ctx()
        try:
            return service.register_user(ctx.uow(), hasher=ctx.hasher, issuer=ctx.issuer, **body)
        except service.EmailAlreadyRegistered:
            abort(409, message="Email is already registered.", messages={"email": ["taken"]})


@blp.route("/auth/login")
class Login(MethodView):
    """Exchange credentials for tokens."""

    decorators = [limiter.limit(_setting("LOGIN_LIMIT_PER_IP"), key_func=get_remote_address)]

    @blp.arguments(CredentialsSchema)
    @blp.response(200, TokensSchema)
    @blp.alt_response(401, description="Wrong email or password")
    @blp.alt_response(429, description="Too many attempts")
    def post(self, body):
        """Log in with email and password; wrong ones from one address slow that address."""
        ctx = _ctx()
        account, address = body["email"], get_remote_address()
        wait = ctx.login_throttle.retry_after(account, address)
        if wait is not None:
            audit.record(audit.LOGIN_THROTTLED, client_address=address, retry_after=wait)
            g.login_retry_after = wait
            abort(
                429,
                message=f"Too many failed logins; try again in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        try:
            issued = service.authenticate_user(
                ctx.uow(), hasher=ctx.hasher, issuer=ctx.issuer, **body
            )
        except service.InvalidCredentials as exc:
            failures = ctx.login_throttle.failed(account, address)
            audit.record(
                audit.LOGIN_FAILED, client_address=address, user_id=exc.user_id, failures=failures
            )
            abort(401, message="Invalid email or password.")
        ctx.login_throttle.succeeded(account, address)
        audit.record(audit.LOGIN_SUCCEEDED, client_address=address, user_id=issued.user.id)
        return issued


@blp.route("/auth/refresh")
class Refresh(MethodView):
    """Rotate a refresh token."""

    @blp.arguments(RefreshSchema)
    @blp.response(200, TokensSchema)
    @blp.alt_response(401, description="Refresh token invalid, expired, revoked or reused")
    def post(self, body):
        """Trade a refresh token for a new pair; reusing one revokes its family."""
        ctx = _ctx()
        try:
            return service.rotate_refresh_token(
                ctx.uow(),
                issuer=ctx.issuer,
                revocations=ctx.revocations,
                refresh_token=body["refresh_token"],
                session_max_seconds=ctx.settings.SESSION_MAX_SECONDS,
            )
        except service.RefreshTokenRejected as exc:
            if exc.reused_by is not None:
                audit.record(
                    audit.REFRESH_REUSE_DETECTED,
                    client_address=get_remote_address(),
                    user_id=exc.reused_by,
                )
            abort(401, message=f"Refresh token rejected: {exc}.")


@blp.route("/auth/logout")
class Logout(MethodView):
    """End a login everywhere."""

    @authenticated
    @blp.response(204)
    def post(self):
        """Revoke the presented access token and its refresh family."""
        ctx = _ctx()
        identity = current_identity()
        service.log_out(
            ctx.uow(),
            issuer=ctx.issuer,
            revocations=ctx.revocations,
            user_id=str(caller_id()),
            token_id=identity.token_id,
            family_id=identity.family_id,
        )
        audit.record(
            audit.LOGGED_OUT,
            client_address=get_remote_address(),
            user_id=identity.user_id,
            session_id=identity.family_id,
        )


@blp.route("/auth/logout-all")
class LogoutAll(MethodView):
    """End every session of the caller."""

    @authenticated
    @blp.response(204)
    def post(self):
        """Revoke every refresh family of the caller, this one included, everywhere."""
        ctx = _ctx()
        ended = sessions.end_sessions(
            ctx.uow(), ctx.revocations, user_id=caller_id(), reason="logout_all"
        )
        audit.record(
            audit.LOGGED_OUT_EVERYWHERE,
            client_address=get_remote_address(),
            user_id=caller_id(),
            sessions_ended=ended,
        )


@blp.route("/users/me")
class CurrentUser(MethodView):
    """The user the bearer token speaks for."""

    @authenticated
    # Documented, not serialised by flask-smorest: every request through the gateway asks for
    # it, and marshmallow plus jsonify cost more than the database read.
    @blp.alt_response(200, schema=UserSchema, success=True, description="The current user")
    def get(self):
        """Return the current user."""
        try:
            user = service.get_user(_ctx().read_user, user_id=caller_id())
        except service.UserNotFound:
            abort(401, message="Token's user no longer exists.")
        return current_app.response_class(
            json.dumps(user_document(user)), mimetype="application/json"
        )


@blp.route("/.well-known/jwks.json")
class Jwks(MethodView):
    """Public keys for local token verification."""

    @blp.response(200, JwksSchema)
    def get(self):
        """The JSON Web Key Set other services verify access tokens with."""
        return _ctx().keys.jwks()
