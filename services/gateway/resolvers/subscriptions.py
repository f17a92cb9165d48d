"""Subscriptions: placeholders until the event streams are wired in."""

from __future__ import annotations

from services.gateway.resolvers.root import subscription
from services.gateway.resolvers.unavailable import not_available_yet_source

for _field in ("taskUpdated", "taskLogs", "fileUpdated"):
    subscription.set_source(_field, not_available_yet_source(_field))
