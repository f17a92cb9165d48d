"""Sign-in with OpenID Connect: authProviders, startOidcLogin, finishOidcLogin."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo

from services.gateway.resolvers.root import mutation, query


@query.field("authProviders")
async def resolve_auth_providers(_obj: Any, info: GraphQLResolveInfo) -> list[str]:
    """The providers users may sign in with."""
    return await info.context.clients.auth.oidc_providers(info.context.caller)


@mutation.field("startOidcLogin")
async def resolve_start_oidc_login(
    _obj: Any, info: GraphQLResolveInfo, *, provider: str, redirect_uri: str
) -> dict[str, Any]:
    """The provider's authorization URL (PKCE, state and nonce kept by the auth service)."""
    return await info.context.clients.auth.start_oidc_login(
        info.context.caller, provider=provider, redirect_uri=redirect_uri
    )


@mutation.field("finishOidcLogin")
async def resolve_finish_oidc_login(
    _obj: Any, info: GraphQLResolveInfo, *, provider: str, code: str, state: str
) -> dict[str, Any]:
    """Trade what the provider sent back for a token pair, creating the user if new."""
    return await info.context.clients.auth.finish_oidc_login(
        info.context.caller, provider=provider, code=code, state=state
    )
