"""The signed-in user."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo

from services.gateway.resolvers.root import query


@query.field("me")
async def resolve_me(_obj: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    """The user the bearer token speaks for; auth verifies the token, revocation included."""
    context = info.context
    context.require_token()
    return await context.clients.auth.current_user(context.caller)
