"""The gateway's one ASGI app: WebSocket /graphql to Ariadne, everything else to Flask."""

from __future__ import annotations

from a2wsgi import WSGIMiddleware
from ariadne.asgi import GraphQL
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.app import create_app
from services.gateway.clients import Clients
from services.gateway.config import GatewaySettings
from services.gateway.executable import Gateway
from services.gateway.websocket import (
    AuthenticatingTransportWSHandler,
    SubscriptionsOnlyHandler,
    websocket_context,
)

GRAPHQL_PATH = "/graphql"
#: RFC 6455 "policy violation": a WebSocket on any other path.
POLICY_VIOLATION = 1008


class GatewayRouter:
    """Route by scope type: HTTP to the WSGI (Flask) app, WebSocket /graphql to Ariadne."""

    def __init__(self, *, http: ASGIApp, websocket: ASGIApp, gateway: Gateway) -> None:
        self.http = http
        self.websocket = websocket
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one connection."""
        if scope["type"] == "websocket":
            if scope["path"] == GRAPHQL_PATH:
                await self.websocket(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        else:
            await self.http(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Start at once; on shutdown close the pooled upstream connections."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.gateway.clients.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_asgi_app(
    settings: GatewaySettings | None = None, *, clients: Clients | None = None
) -> GatewayRouter:
    """Build the Flask app and the WebSocket GraphQL app over one schema and one set of clients."""
    settings = settings or GatewaySettings()
    flask_app = create_app(settings, clients=clients)
    gateway: Gateway = flask_app.extensions["gateway"]
    websocket_app = GraphQL(
        gateway.schema,
        context_value=websocket_context(gateway.clients, gateway.verifier),
        http_handler=SubscriptionsOnlyHandler(),
        websocket_handler=AuthenticatingTransportWSHandler(gateway.verifier),
        **gateway.options,
    )
    return GatewayRouter(
        http=WSGIMiddleware(flask_app, workers=settings.WORKER_THREADS),
        websocket=websocket_app,
        gateway=gateway,
    )
