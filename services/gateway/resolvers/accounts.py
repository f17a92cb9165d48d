"""Account management: change and reset a password, verify an email address, delete it."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo

from services.gateway.resolvers.root import mutation


@mutation.field("changePassword")
async def resolve_change_password(
    _obj: Any, info: GraphQLResolveInfo, *, current_password: str, new_password: str
) -> dict[str, Any]:
    """Set a new password; the caller gets a new session and every other one ends."""
    context = info.context
    context.require_token()
    return await context.clients.auth.change_password(
        context.caller, current_password=current_password, new_password=new_password
    )


@mutation.field("requestPasswordReset")
async def resolve_request_password_reset(
    _obj: Any, info: GraphQLResolveInfo, *, email: str
) -> bool:
    """Mail a reset link if the email has an account; true either way."""
    await info.context.clients.auth.request_password_reset(info.context.caller, email=email)
    return True


@mutation.field("resetPassword")
async def resolve_reset_password(
    _obj: Any, info: GraphQLResolveInfo, *, token: str, new_password: str
) -> bool:
    """Set a new password with a mailed token; every session of the user ends."""
    await info.context.clients.auth.reset_password(
        info.context.caller, token=token, new_password=new_password
    )
    return True


@mutation.field("requestEmailVerification")
async def resolve_request_email_verification(_obj: Any, info: GraphQLResolveInfo) -> bool:
    """Mail the caller a link that confirms their email address."""
    context = info.context
    context.require_token()
    await context.clients.auth.request_email_verification(context.caller)
    return True


@mutation.field("verifyEmail")
async def resolve_verify_email(
    _obj: Any, info: GraphQLResolveInfo, *, token: str
) -> dict[str, Any]:
    """Confirm an email address with a mailed token; returns the user."""
    return await info.context.clients.auth.verify_email(info.context.caller, token=token)


@mutation.field("deleteAccount")
async def resolve_delete_account(
    _obj: Any, info: GraphQLResolveInfo, *, password: str | None = None
) -> bool:
    """Lock the caller out and start removing their account from every service."""
    context = info.context
    context.require_token()
    await context.clients.auth.delete_account(context.caller, password=password)
    return True
