"""Subscriptions over WebSocket (graphql-transport-ws), authenticated in connection_init.

A socket lives no longer than the access token it was opened with: it closes with 4401 when
that token expires, idle or not (the client reconnects with a fresh one). Operations are capped
per socket and per user (in this process); one over a cap is answered RATE_LIMITED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from ariadne.asgi.handlers import GraphQLTransportWSHandler
from ariadne.asgi.handlers.graphql_transport_ws import ClientContext
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket

from services.gateway.context import IDENTITY_KEY, TOKEN_KEY
from services.gateway.errors import error_entry
from shared.auth import RevocationUnavailable, TokenInvalid, TokenVerifier, bearer_token

log = logging.getLogger("dockyard.gateway.websocket")

#: graphql-transport-ws close codes (the graphql-ws library's) plus RFC 6455's "try again later".
UNAUTHORIZED, FORBIDDEN, TOO_MANY_INITIALISATION_REQUESTS = 4401, 4403, 4429
TRY_AGAIN_LATER, INTERNAL_ERROR = 1013, 1011
#: Where the socket's token expiry timer is kept in its scope.
EXPIRY_KEY = "dockyard.expiry"


class ConnectionRejected(Exception):
    """connection_init refused: the socket closes with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class AuthenticatingTransportWSHandler(GraphQLTransportWSHandler):
    """graphql-transport-ws whose connection_init must carry a valid bearer token."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        max_per_connection: int = 20,
        max_per_user: int = 100,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("connection_init_wait_timeout", timedelta(seconds=10))
        super().__init__(**kwargs)
        self.verifier = verifier
        self.max_per_connection = max_per_connection
        self.max_per_user = max_per_user
        #: Running operations per user id, over every socket of this process.
        self.running: Counter[str] = Counter()

    async def handle_websocket(self, websocket: WebSocket) -> None:
        """Serve the socket; stop its token's expiry timer when it ends."""
        try:
            await super().handle_websocket(websocket)
        finally:
            timer = websocket.scope.pop(EXPIRY_KEY, None)
            if timer is not None:
                timer.cancel()

    async def close_when_token_expires(self, websocket: WebSocket, expires_at: int) -> None:
        """Close the socket with 4401 once its access token has expired."""
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        log.info("closing a WebSocket whose access token expired")
        websocket.scope.pop(EXPIRY_KEY, None)
        try:
            await websocket.close(code=UNAUTHORIZED, reason="Token expired")
        except RuntimeError:
            pass  # it closed meanwhile

    async def handle_websocket_subscribe(
        self, websocket: WebSocket, data: Any, operation_id: str, client_context: ClientContext
    ) -> None:
        """Start an operation unless the socket or its user is at the cap (RATE_LIMITED)."""
        identity = websocket.scope.get(IDENTITY_KEY)
        if client_context.connection_acknowledged and identity is not None:
            if len(client_context.operations) >= self.max_per_connection:
                await self.refuse(websocket, operation_id, "this connection")
                return
            if self.running[identity.user_id] >= self.max_per_user:
                await self.refuse(websocket, operation_id, "your account")
                return
        await super().handle_websocket_subscribe(websocket, data, operation_id, client_context)
        if identity is not None and operation_id in client_context.operations:
            # Counted out in handle_on_complete, which Ariadne calls once per operation.
            self.running[identity.user_id] += 1

    async def refuse(self, websocket: WebSocket, operation_id: str, holder: str) -> None:
        """Answer an operation over a cap with an error message naming RATE_LIMITED."""
        message = f"Too many operations running for {holder}; complete one first."
        await websocket.send_json(
            {
                "type": self.GQL_ERROR,
                "id": operation_id,
                "payload": [error_entry(message, "RATE_LIMITED")],
            }
        )

    async def handle_on_complete(self, websocket: WebSocket, operation: Any) -> None:
        """Count the operation out of its user's running ones, then Ariadne's hook."""
        identity = websocket.scope.get(IDENTITY_KEY)
        if identity is not None:
            self.running[identity.user_id] -= 1
            if self.running[identity.user_id] <= 0:
                del self.running[identity.user_id]
        await super().handle_on_complete(websocket, operation)

    async def authenticate(self, websocket: WebSocket, payload: Any) -> None:
        """Verify the payload's `Authorization: Bearer <token>`; remember who it is."""
        header = payload.get("Authorization") if isinstance(payload, dict) else None
        token = bearer_token(header if isinstance(header, str) else None)
        if token is None:
            raise ConnectionRejected(UNAUTHORIZED, "Unauthorized")
        try:
            # The verifier blocks (Redis, and JWKS on a cache miss): keep it off the event loop.
            identity = await run_in_threadpool(self.verifier.verify, token)
        except TokenInvalid:
            raise ConnectionRejected(UNAUTHORIZED, "Unauthorized") from None
        except RevocationUnavailable:
            log.warning("revocation list unreachable; refusing a WebSocket connection")
            raise ConnectionRejected(TRY_AGAIN_LATER, "Try again later") from None
        websocket.scope[IDENTITY_KEY] = identity
        websocket.scope[TOKEN_KEY] = token
        websocket.scope[EXPIRY_KEY] = asyncio.create_task(
            self.close_when_token_expires(websocket, identity.expires_at)
        )

    async def handle_websocket_connection_init_message(
        self, websocket: WebSocket, message: dict, client_context: ClientContext
    ) -> None:
        """Acknowledge a valid connection_init; otherwise close with 4401 (never Ariadne's 1000)."""
        if client_context.connection_init_received:
            await websocket.close(code=TOO_MANY_INITIALISATION_REQUESTS)
            return
        client_context.connection_init_received = True
        try:
            await self.authenticate(websocket, message.get("payload"))
        except ConnectionRejected as exc:
            await websocket.close(code=exc.code, reason=exc.reason)
            return
        except Exception:
            log.exception("WebSocket authentication failed unexpectedly")
            await websocket.close(code=INTERNAL_ERROR)
            return
        await websocket.send_json({"type": self.GQL_CONNECTION_ACK})
        client_context.connection_acknowledged = True
