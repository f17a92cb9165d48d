"""Accounts and tokens: register, login, refreshToken, logout, logoutAll."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo

from services.gateway.resolvers.root import mutation


@mutation.field("register")
async def resolve_register(
    _obj: Any, info: GraphQLResolveInfo, *, email: str, password: str
) -> dict[str, Any]:
    """Create an account and return its first token pair."""
    return await info.context.clients.auth.register(
        info.context.caller, email=email, password=password
    )


@mutation.field("login")
async def resolve_login(
    _obj: Any, info: GraphQLResolveInfo, *, email: str, password: str
) -> dict[str, Any]:
    """Exchange credentials for a token pair; every attempt counts against auth's limits."""
    return await info.context.clients.auth.login(
        info.context.caller, email=email, password=password
    )


@mutation.field("refreshToken")
async def resolve_refresh_token(
    _obj: Any, info: GraphQLResolveInfo, *, refresh_token: str
) -> dict[str, Any]:
    """Rotate a refresh token into a new pair."""
    return await info.context.clients.auth.refresh(info.context.caller, refresh_token=refresh_token)


@mutation.field("logout")
async def resolve_logout(_obj: Any, info: GraphQLResolveInfo) -> bool:
    """Revoke the caller's access token and its refresh family."""
    context = info.context
    context.require_token()
    await context.clients.auth.logout(context.caller)
    return True


@mutation.field("logoutAll")
async def resolve_logout_all(_obj: Any, info: GraphQLResolveInfo) -> bool:
    """End every session of the caller's user: their tokens stop working everywhere."""
    context = info.context
    context.require_token()
    await context.clients.auth.logout_all(context.caller)
    return True
