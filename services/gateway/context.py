"""What every resolver receives as `info.context`: the caller, the clients, the verifier."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from services.gateway.clients import Caller, Clients
from services.gateway.downloads import DownloadLinks
from services.gateway.errors import ServiceUnavailable, Unauthenticated
from services.gateway.feed import EventFeed
from services.gateway.plumbing import request_id_of
from shared.auth import Identity, RevocationUnavailable, TokenInvalid, TokenVerifier, bearer_token

log = logging.getLogger("dockyard.gateway.context")

#: Where a WebSocket's connection_init leaves the verified identity and token in its scope.
IDENTITY_KEY, TOKEN_KEY = "dockyard.identity", "dockyard.token"


@dataclass
class GatewayContext:
    """One operation's context; the identity is verified on first use and remembered."""

    caller: Caller
    clients: Clients
    verifier: TokenVerifier
    #: Set up front when the transport already verified the token (WebSocket connection_init).
    verified_identity: Identity | None = field(default=None, repr=False)
    #: The process's event feed, which subscriptions watch.
    feed: EventFeed | None = field(default=None, repr=False)
    #: Signs File.downloadUrl links.
    download_links: DownloadLinks | None = field(default=None, repr=False)

    def require_token(self) -> str:
        """The caller's bearer token, or UNAUTHENTICATED when there is none."""
        if not self.caller.token:
            raise Unauthenticated("Authentication required: send a bearer token.")
        return self.caller.token

    async def identity(self) -> Identity:
        """Verify the bearer token locally (signature, expiry, revocation); cache the result."""
        if self.verified_identity is None:
            self.verified_identity = await verify_token(self.verifier, self.require_token())
        return self.verified_identity


async def verify_token(verifier: TokenVerifier, token: str) -> Identity:
    """Verify an access token off the event loop, mapping failures onto contract errors."""
    try:
        # The verifier blocks (Redis, and JWKS on a cache miss).
        return await run_in_threadpool(verifier.verify, token)
    except TokenInvalid as exc:
        raise Unauthenticated(f"Authentication failed: {exc}.") from None
    except RevocationUnavailable as exc:
        log.warning("revocation list unreachable, refusing the token: %s", exc)
        raise ServiceUnavailable("Authentication is temporarily unavailable.") from None


def context_factory(
    clients: Clients,
    verifier: TokenVerifier,
    feed: EventFeed,
    *,
    download_links: DownloadLinks | None = None,
) -> Callable[[HTTPConnection, Any], GatewayContext]:
    """Ariadne `context_value`: each operation's caller, from its HTTP request or WebSocket.

    An HTTP request names its caller in its Authorization header; a WebSocket did so once, in
    connection_init, and every operation on it gets a request id of its own.
    """

    def context(connection: HTTPConnection, _data: Any) -> GatewayContext:
        scope = connection.scope
        client = scope.get("client")
        if scope["type"] == "websocket":
            token = scope.get(TOKEN_KEY)
            request_id = str(uuid.uuid4())
        else:
            token = bearer_token(connection.headers.get("authorization"))
            request_id = request_id_of(scope)
        return GatewayContext(
            caller=Caller(
                client_address=client[0] if client else None,
                request_id=request_id,
                token=token,
            ),
            clients=clients,
            verifier=verifier,
            verified_identity=scope.get(IDENTITY_KEY),
            feed=feed,
            download_links=download_links,
        )

    return context
