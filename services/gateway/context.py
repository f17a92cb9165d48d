"""What every resolver receives as `info.context`: the caller, the clients, the verifier."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from services.gateway.clients import Caller, Clients
from services.gateway.errors import ServiceUnavailable, Unauthenticated
from services.gateway.feed import EventFeed
from shared.auth import Identity, RevocationUnavailable, TokenInvalid, TokenVerifier

log = logging.getLogger("dockyard.gateway.context")


@dataclass
class GatewayContext:
    """One operation's context; the identity is verified on first use and remembered."""

    caller: Caller
    clients: Clients
    verifier: TokenVerifier
    #: Set up front when the transport already verified the token (WebSocket connection_init).
    verified_identity: Identity | None = field(default=None, repr=False)
    #: The process's event feed, which subscriptions watch (WebSocket operations only).
    feed: EventFeed | None = field(default=None, repr=False)
    #: Whether resolvers run on the event loop (WebSocket) rather than in a request thread.
    on_event_loop: bool = False

    def blocking(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call a blocking function (a service call) without ever stalling the event loop.

        Over HTTP the operation runs in a request thread, so the function runs right there;
        over WebSocket it runs in a worker thread and this returns an awaitable of its result,
        which graphql-core awaits like any async resolver's.
        """
        if self.on_event_loop:
            return run_in_threadpool(function, *args, **kwargs)
        return function(*args, **kwargs)

    def require_token(self) -> str:
        """The caller's bearer token, or UNAUTHENTICATED when there is none."""
        if not self.caller.token:
            raise Unauthenticated("Authentication required: send a bearer token.")
        return self.caller.token

    def identity(self) -> Identity:
        """Verify the bearer token locally (signature, expiry, revocation); cache the result."""
        if self.verified_identity is None:
            self.verified_identity = verify_token(self.verifier, self.require_token())
        return self.verified_identity


def verify_token(verifier: TokenVerifier, token: str) -> Identity:
    """Verify an access token, mapping failures onto contract errors."""
    try:
        return verifier.verify(token)
    except TokenInvalid as exc:
        raise Unauthenticated(f"Authentication failed: {exc}.") from None
    except RevocationUnavailable as exc:
        log.warning("revocation list unreachable, refusing the token: %s", exc)
        raise ServiceUnavailable("Authentication is temporarily unavailable.") from None
