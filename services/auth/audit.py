"""Security events of accounts as JSON log lines: what happened, to whom, from where; no secrets."""

from __future__ import annotations

import logging

log = logging.getLogger("dockyard.auth.events")


def log_auth_event(event: str, *, user_id: str | None, client_address: str | None) -> None:
    """Write one auth event line (`auth_event`, `user_id`, `client_address` fields)."""
    log.info(
        "auth event %s",
        event,
        extra={"auth_event": event, "user_id": user_id, "client_address": client_address},
    )
