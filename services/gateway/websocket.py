"""Subscriptions over WebSocket (graphql-transport-ws), authenticated in connection_init."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from ariadne.asgi.handlers import GraphQLTransportWSHandler
from ariadne.asgi.handlers.graphql_transport_ws import ClientContext
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket

from services.gateway.context import IDENTITY_KEY, TOKEN_KEY
from shared.auth import RevocationUnavailable, TokenInvalid, TokenVerifier, bearer_token

log = logging.getLogger("dockyard.gateway.websocket")

#: graphql-transport-ws close codes (the graphql-ws library's) plus RFC 6455's "try again later".
UNAUTHORIZED, FORBIDDEN, TOO_MANY_INITIALISATION_REQUESTS = 4401, 4403, 4429
TRY_AGAIN_LATER, INTERNAL_ERROR = 1013, 1011


class ConnectionRejected(Exception):
    """connection_init refused: the socket closes with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class AuthenticatingTransportWSHandler(GraphQLTransportWSHandler):
    """graphql-transport-ws whose connection_init must carry a valid bearer token."""

    def __init__(self, verifier: TokenVerifier, **kwargs: Any) -> None:
        kwargs.setdefault("connection_init_wait_timeout", timedelta(seconds=10))
        super().__init__(**kwargs)
        self.verifier = verifier

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
