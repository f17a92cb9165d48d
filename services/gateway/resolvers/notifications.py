"""Notifications: the rules, the history, webhooks, and the notificationReceived subscription."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLResolveInfo

from services.gateway.context import GatewayContext
from services.gateway.errors import ServiceUnavailable
from services.gateway.resolvers.root import mutation, query, subscription

log = logging.getLogger("dockyard.gateway.subscriptions")

#: What the tasks service raises, per user, when a notification is created.
NOTIFICATION_AGGREGATE = "user_notifications"
#: How many of the newest notifications a subscriber's read looks at after each event.
READ_BACK = 20
#: Waits between reads while the tasks service is unavailable: doubling up to the maximum.
RETRY_INITIAL, RETRY_MAX = 0.5, 30.0


@query.field("notificationSettings")
async def resolve_notification_settings(_obj: Any, info: GraphQLResolveInfo) -> list[dict]:
    """Every kind of event with the caller's channels for it."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.notification_rules(context.caller)


@mutation.field("updateNotificationSettings")
async def resolve_update_notification_settings(
    _obj: Any, info: GraphQLResolveInfo, *, rules: list[dict[str, Any]]
) -> list[dict]:
    """Set the channels of the kinds named; every rule after."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.update_notification_rules(context.caller, rules=rules)


@query.field("notifications")
async def resolve_notifications(
    _obj: Any, info: GraphQLResolveInfo, *, first: int | None = None, after: str | None = None
) -> dict[str, Any]:
    """The caller's notifications, newest first; the tasks service's page is a connection."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.list_notifications(context.caller, first=first, after=after)


@query.field("webhooks")
async def resolve_webhooks(_obj: Any, info: GraphQLResolveInfo) -> list[dict]:
    """The caller's webhooks."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.list_webhooks(context.caller)


@mutation.field("createWebhook")
async def resolve_create_webhook(
    _obj: Any, info: GraphQLResolveInfo, *, url: str, events: list[str]
) -> dict[str, Any]:
    """Add a webhook; the tasks service checks the URL (BAD_USER_INPUT naming `url`)."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.create_webhook(context.caller, url=url, events=events)


@mutation.field("deleteWebhook")
async def resolve_delete_webhook(_obj: Any, info: GraphQLResolveInfo, *, id: str) -> bool:
    """Delete one of the caller's webhooks; NOT_FOUND when absent or not theirs."""
    context = info.context
    context.require_token()
    await context.clients.tasks.delete_webhook(context.caller, webhook_id=id)
    return True


async def _newest(context: GatewayContext) -> list[dict[str, Any]]:
    delay = RETRY_INITIAL
    while True:
        try:
            page = await context.clients.tasks.list_notifications(context.caller, first=READ_BACK)
            return [edge["node"] for edge in page["edges"]]
        except ServiceUnavailable as exc:
            log.warning("cannot read notifications, retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)


async def notifications_received(context: GatewayContext) -> AsyncIterator[dict[str, Any]]:
    """Each notification of the caller created after the subscription started, oldest first.

    Nothing is replayed: the contract's "current state first" has no meaning for a stream of
    new items. The notifications seen at the start are remembered, and after each event (or a
    reconnect of the listener) the newest are read again and the unseen ones sent.
    """
    identity = await context.identity()
    assert context.feed is not None, "subscriptions run with the process's event feed"
    # Watch before reading: a notification committed after the read cannot go unnoticed.
    watch = context.feed.watch(NOTIFICATION_AGGREGATE, identity.user_id)
    try:
        seen = {node["id"] for node in await _newest(context)}
        while True:
            await watch.changed()
            for node in reversed(await _newest(context)):
                if node["id"] not in seen:
                    seen.add(node["id"])
                    yield node
    finally:
        watch.close()


@subscription.source("notificationReceived")
def subscribe_notification_received(
    _obj: Any, info: GraphQLResolveInfo
) -> AsyncIterator[dict[str, Any]]:
    """The caller's notifications as they are created."""
    return notifications_received(info.context)


@subscription.field("notificationReceived")
def resolve_notification_received(state: dict[str, Any], _info: GraphQLResolveInfo) -> Any:
    """Each notification the source produced is the field's value."""
    return state
