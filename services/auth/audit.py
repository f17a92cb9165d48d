"""Security events of the auth service as JSON log lines: who, from where, what happened.

Never a password, a token or a hash: only user ids, session (family) ids, client addresses
and counts. The lines go through the service's JSON logging (shared.logging) with the
request id, under the `dockyard.auth.events` logger so they can be routed on their own.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("dockyard.auth.events")

LOGIN_SUCCEEDED = "login_succeeded"
LOGIN_FAILED = "login_failed"
LOGIN_THROTTLED = "login_throttled"
REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
LOGGED_OUT = "logged_out"
LOGGED_OUT_EVERYWHERE = "logged_out_everywhere"
PASSWORD_CHANGED = "password_changed"
PASSWORD_RESET = "password_reset"
EMAIL_VERIFIED = "email_verified"
ACCOUNT_DELETION_REQUESTED = "account_deletion_requested"

_WARNINGS = {LOGIN_FAILED, LOGIN_THROTTLED, REFRESH_REUSE_DETECTED}


def record(event: str, *, client_address: str | None, user_id: Any = None, **details: Any) -> None:
    """Log one security event (warnings for the ones that suggest an attack)."""
    level = logging.WARNING if event in _WARNINGS else logging.INFO
    fields = {"event": event, "client_address": client_address, **details}
    if user_id is not None:
        fields["user_id"] = str(user_id)
    log.log(level, event, extra=fields)
