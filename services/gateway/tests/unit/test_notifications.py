"""Notification operations over a fake tasks client, and notificationReceived driven by hand."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from services.gateway.clients import Caller
from services.gateway.context import GatewayContext
from services.gateway.feed import EventFeed
from services.gateway.resolvers.notifications import (
    NOTIFICATION_AGGREGATE,
    notifications_received,
)
from services.gateway.tests.conftest import FakeTasksClient, gql
from shared.auth import Identity
from shared.events import Envelope

AUTH = {"Authorization": "Bearer t"}
USER_ID = str(uuid.uuid4())


def notification(subject: str = "Task nightly failed") -> dict[str, Any]:
    """A notification as the tasks service answers it."""
    return {
        "id": str(uuid.uuid4()),
        "event": "TASK_FAILED",
        "subject": subject,
        "subject_id": str(uuid.uuid4()),
        "created_at": "2026-11-30T17:00:00+00:00",
        "deliveries": [
            {
                "channel": "WEBHOOK",
                "webhook_id": str(uuid.uuid4()),
                "status": "PENDING",
                "attempts": 2,
                "last_error": "HTTP 500",
                "response_status": 500,
                "idempotency_key": "k-1",
                "delivered_at": None,
            }
        ],
    }


def page(*nodes: dict[str, Any]) -> dict[str, Any]:
    """A page of notifications, newest first."""
    return {
        "edges": [{"cursor": f"c{i}", "node": n} for i, n in enumerate(nodes)],
        "page_info": {"has_next_page": False, "end_cursor": None},
        "total_count": len(nodes),
    }


class FakeNotificationClient(FakeTasksClient):
    """The fake tasks client, answering the notification calls too."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[dict[str, Any]] = [page(notification())]

    async def list_notifications(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """The next scripted page (the last one again when the script runs out)."""
        answer = self.pages.pop(0) if len(self.pages) > 1 else self.pages[0]
        return self._answer("list_notifications", caller, answer, **kwargs)

    async def notification_rules(self, caller: Caller, **kwargs: Any) -> list[dict[str, Any]]:
        """Canned rules."""
        return self._answer(
            "notification_rules", caller, [{"event": "TASK_FAILED", "channels": ["LOG"]}]
        )

    async def update_notification_rules(self, caller: Caller, **kwargs: Any) -> list[dict]:
        """The rules as sent."""
        return self._answer("update_notification_rules", caller, kwargs["rules"], **kwargs)

    async def create_webhook(self, caller: Caller, **kwargs: Any) -> dict[str, Any]:
        """Canned creation."""
        webhook = {
            "id": str(uuid.uuid4()),
            "url": kwargs["url"],
            "events": kwargs["events"],
            "enabled": True,
            "created_at": "2026-11-30T17:00:00+00:00",
        }
        return self._answer(
            "create_webhook", caller, {"webhook": webhook, "secret": "whsec_x"}, **kwargs
        )

    async def delete_webhook(self, caller: Caller, **kwargs: Any) -> None:
        """Canned deletion."""
        return self._answer("delete_webhook", caller, None, **kwargs)


@pytest.fixture
def fake_tasks() -> FakeNotificationClient:
    """The fake tasks client the app under test calls."""
    return FakeNotificationClient()


def test_notifications_show_their_deliveries_with_graphql_names(client, fake_tasks):
    query = """{ notifications(first: 5) { totalCount edges { node { event subject subjectId
        deliveries { channel status attempts lastError deliveredAt responseStatus
        idempotencyKey } } } } }"""
    body = gql(client, query, headers=AUTH).json()
    node = body["data"]["notifications"]["edges"][0]["node"]
    assert node["subject"] == "Task nightly failed"
    assert node["deliveries"] == [
        {
            "channel": "WEBHOOK",
            "status": "PENDING",
            "attempts": 2,
            "lastError": "HTTP 500",
            "deliveredAt": None,
            "responseStatus": 500,
            "idempotencyKey": "k-1",
        }
    ]
    ((name, _caller, kwargs),) = fake_tasks.calls
    assert (name, kwargs) == ("list_notifications", {"first": 5, "after": None})


def test_rules_and_webhooks_pass_their_arguments(client, fake_tasks):
    rules = [{"event": "FILE_FAILED", "channels": ["EMAIL", "WEBHOOK"]}]
    query = """mutation ($rules: [NotificationRuleInput!]!) {
        updateNotificationSettings(rules: $rules) { event channels } }"""
    body = gql(client, query, {"rules": rules}, headers=AUTH).json()
    assert body["data"]["updateNotificationSettings"] == rules
    query = """mutation { createWebhook(url: "https://example.com/h", events: [TASK_FAILED])
        { secret webhook { url events enabled } } }"""
    body = gql(client, query, headers=AUTH).json()
    assert body["data"]["createWebhook"] == {
        "secret": "whsec_x",
        "webhook": {"url": "https://example.com/h", "events": ["TASK_FAILED"], "enabled": True},
    }
    query = 'mutation { deleteWebhook(id: "9b1d3c5e-2f4a-4b6c-8d0e-1a2b3c4d5e6f") }'
    assert gql(client, query, headers=AUTH).json() == {"data": {"deleteWebhook": True}}
    assert [name for name, _c, _k in fake_tasks.calls] == [
        "update_notification_rules",
        "create_webhook",
        "delete_webhook",
    ]


def test_notifications_need_a_token(client):
    body = gql(client, "{ notificationSettings { event } }").json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_the_subscription_sends_only_notifications_created_after_it_started():
    old, new, newer = notification("old"), notification("new"), notification("newer")
    fake = FakeNotificationClient()
    fake.pages = [page(old), page(new, old), page(new, old), page(newer, new, old)]

    def event() -> Envelope:
        return Envelope(
            id=str(uuid.uuid4()),
            type="NotificationCreated",
            version=1,
            source="tasks",
            occurred_at="2026-11-30T17:00:00+00:00",
            aggregate_type=NOTIFICATION_AGGREGATE,
            aggregate_id=USER_ID,
            sequence=1,
            correlation_id=None,
        )

    async def scenario() -> tuple[list[str], int]:
        feed = EventFeed()
        context = GatewayContext(
            caller=Caller(token="t"),
            clients=SimpleNamespace(tasks=fake),  # type: ignore[arg-type]
            verifier=None,  # type: ignore[arg-type]
            verified_identity=Identity(USER_ID, "tok", None, 0, {}),
            feed=feed,
        )
        stream = notifications_received(context)
        received: list[str] = []

        async def drive() -> None:
            for _ in range(3):
                await asyncio.sleep(0.05)
                feed.deliver(event())

        driver = asyncio.create_task(drive())
        async with asyncio.timeout(5):
            async for node in stream:
                received.append(node["subject"])
                if len(received) == 2:
                    break
        await stream.aclose()
        driver.cancel()
        return received, len(feed)

    received, watched = asyncio.run(scenario())
    assert received == ["new", "newer"]
    assert watched == 0, "the watch outlived its subscription"
