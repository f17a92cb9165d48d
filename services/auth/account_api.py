"""REST endpoints of account management: thin views over accounts.py."""

from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView
from flask_limiter.util import get_remote_address
from flask_smorest import abort

from services.auth import accounts, audit, deletion
from services.auth.api import limiter
from services.auth.password_policy import WeakPassword
from services.auth.schemas import (
    AccountDeletionSchema,
    AccountDeletionStartedSchema,
    EmailVerificationSchema,
    PasswordChangeSchema,
    PasswordResetRequestSchema,
    PasswordResetSchema,
    TokensSchema,
    UserSchema,
)
from services.auth.service import UserNotFound, normalize_email
from shared.auth import TokenInvalid, authenticated, bearer_token, caller_id
from shared.web import ServiceBlueprint

blp = ServiceBlueprint(
    "accounts", __name__, url_prefix="/v1", description="Passwords and email verification"
)

TOKEN_INVALID = "This link is invalid, expired or already used: ask for a new one."


def _ctx():
    return current_app.extensions["auth"]


def _setting(name: str):
    return lambda: getattr(current_app.extensions["auth"].settings, name)


def _reset_email_key() -> str:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str):
        return f"ip:{get_remote_address()}"
    return "reset:" + normalize_email(email)


def _caller_key() -> str:
    # Limits run before the view authenticates, so the token is verified here (cached) to key a
    # bucket by its user: an unverified subject would let anyone drain another user's bucket.
    token = bearer_token(request.headers.get("Authorization"))
    try:
        if token:
            return "user:" + current_app.extensions["token_verifier"].verify(token).user_id
    except TokenInvalid:
        pass
    return f"ip:{get_remote_address()}"


def _weak(field: str, exc: WeakPassword):
    abort(400, message=str(exc), messages={field: [str(exc)]})


@blp.route("/auth/password-reset/request")
class PasswordResetRequest(MethodView):
    """Ask for a password reset mail."""

    decorators = [
        limiter.limit(_setting("EMAIL_REQUEST_LIMIT_PER_ACCOUNT"), key_func=_reset_email_key),
        limiter.limit(_setting("EMAIL_REQUEST_LIMIT_PER_IP"), key_func=get_remote_address),
    ]

    @blp.arguments(PasswordResetRequestSchema)
    @blp.response(204)
    @blp.alt_response(429, description="Too many requests")
    def post(self, body):
        """Mail a reset token if the email has an account; the answer is the same either way."""
        accounts.request_password_reset(_ctx().uow(), email=body["email"])


@blp.route("/auth/password-reset")
class PasswordReset(MethodView):
    """Set a new password with a mailed token."""

    decorators = [limiter.limit(_setting("LOGIN_LIMIT_PER_IP"), key_func=get_remote_address)]

    @blp.arguments(PasswordResetSchema)
    @blp.response(204)
    @blp.alt_response(400, description="Token invalid, expired or used; or password too weak")
    def post(self, body):
        """Set the password and end every session of the user."""
        ctx = _ctx()
        try:
            user_id = accounts.reset_password(
                ctx.uow(),
                hasher=ctx.hasher,
                revocations=ctx.revocations,
                token=body["token"],
                new_password=body["new_password"],
            )
        except accounts.AccountTokenInvalid:
            abort(400, message=TOKEN_INVALID, messages={"token": [TOKEN_INVALID]})
        except WeakPassword as exc:
            _weak("new_password", exc)
        audit.record(audit.PASSWORD_RESET, user_id=user_id, client_address=get_remote_address())


@blp.route("/auth/password-change")
class PasswordChange(MethodView):
    """Change the caller's password."""

    decorators = [
        limiter.limit(_setting("PASSWORD_CHANGE_LIMIT_PER_ACCOUNT"), key_func=_caller_key),
        limiter.limit(_setting("LOGIN_LIMIT_PER_IP"), key_func=get_remote_address),
    ]

    @authenticated
    @blp.arguments(PasswordChangeSchema)
    @blp.response(200, TokensSchema)
    @blp.alt_response(400, description="Current password wrong, or new password too weak")
    def post(self, body):
        """Set a new password; returns a new session and ends every other one."""
        ctx = _ctx()
        user_id = caller_id()
        try:
            issued = accounts.change_password(
                ctx.uow(),
                hasher=ctx.hasher,
                issuer=ctx.issuer,
                revocations=ctx.revocations,
                user_id=user_id,
                **body,
            )
        except accounts.CurrentPasswordIncorrect:
            message = "Current password is incorrect."
            abort(400, message=message, messages={"current_password": [message]})
        except WeakPassword as exc:
            _weak("new_password", exc)
        except UserNotFound:
            abort(401, message="Token's user no longer exists.")
        audit.record(audit.PASSWORD_CHANGED, user_id=user_id, client_address=get_remote_address())
        return issued


@blp.route("/users/me/email-verification")
class EmailVerificationRequest(MethodView):
    """Ask for an email verification mail."""

    decorators = [
        limiter.limit(_setting("EMAIL_REQUEST_LIMIT_PER_ACCOUNT"), key_func=_caller_key),
        limiter.limit(_setting("EMAIL_REQUEST_LIMIT_PER_IP"), key_func=get_remote_address),
    ]

    @authenticated
    @blp.response(204)
    @blp.alt_response(429, description="Too many requests")
    def post(self):
        """Mail a verification token to the caller's address (nothing if already verified)."""
        try:
            accounts.request_email_verification(_ctx().uow(), user_id=caller_id())
        except UserNotFound:
            abort(401, message="Token's user no longer exists.")


@blp.route("/auth/email-verification")
class EmailVerification(MethodView):
    """Confirm an email address with a mailed token."""

    decorators = [limiter.limit(_setting("LOGIN_LIMIT_PER_IP"), key_func=get_remote_address)]

    @blp.arguments(EmailVerificationSchema)
    @blp.response(200, UserSchema)
    @blp.alt_response(400, description="Token invalid, expired or used")
    def post(self, body):
        """Mark the token's user's email verified; returns the user."""
        try:
            user = accounts.verify_email(_ctx().uow(), token=body["token"])
        except accounts.AccountTokenInvalid:
            abort(400, message=TOKEN_INVALID, messages={"token": [TOKEN_INVALID]})
        audit.record(audit.EMAIL_VERIFIED, user_id=user.id, client_address=get_remote_address())
        return user


@blp.route("/users/me/deletion")
class AccountDeletion(MethodView):
    """Delete the caller's account."""

    decorators = [
        limiter.limit(_setting("PASSWORD_CHANGE_LIMIT_PER_ACCOUNT"), key_func=_caller_key),
        limiter.limit(_setting("LOGIN_LIMIT_PER_IP"), key_func=get_remote_address),
    ]

    @authenticated
    @blp.arguments(AccountDeletionSchema)
    @blp.response(202, AccountDeletionStartedSchema)
    @blp.alt_response(400, description="Password missing or wrong")
    def post(self, body):
        """Lock the caller out at once (every session ends) and start removing the account."""
        ctx = _ctx()
        user_id = caller_id()
        try:
            saga_id = deletion.request_account_deletion(
                ctx.uow(),
                hasher=ctx.hasher,
                revocations=ctx.revocations,
                sagas=deletion.auth_sagas(),
                user_id=user_id,
                password=body["password"],
            )
        except deletion.PasswordRequired:
            message = "Your password is required to delete this account."
            abort(400, message=message, messages={"password": [message]})
        except deletion.PasswordIncorrect:
            message = "Password is incorrect."
            abort(400, message=message, messages={"password": [message]})
        except UserNotFound:
            abort(401, message="Token's user no longer exists.")
        audit.record(
            audit.ACCOUNT_DELETION_REQUESTED, user_id=user_id, client_address=get_remote_address()
        )
        return {"saga_id": saga_id}
