"""The gateway's one ASGI app: WebSocket /graphql to Ariadne, everything else to Flask."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from a2wsgi import WSGIMiddleware
from ariadne.asgi import GraphQL
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.app import create_app
from services.gateway.clients import Clients
from services.gateway.config import GatewaySettings
from services.gateway.executable import Gateway
from services.gateway.feed import EventFeed, EventListener
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

    def __init__(
        self, *, http: ASGIApp, websocket: ASGIApp, gateway: Gateway, listener: EventListener
    ) -> None:
        self.http = http
        self.websocket = websocket
        self.gateway = gateway
        self.listener = listener

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
        """Start the event listener; on shutdown stop it and close the upstream connections."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # It connects in its own thread: start-up never waits for RabbitMQ.
                self.listener.start(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.listener.stop)
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
    feed = EventFeed()
    listener = EventListener(feed, amqp_url=settings.AMQP_URL, namespace=settings.NAMESPACE)
    websocket_app = GraphQL(
        gateway.schema,
        context_value=websocket_context(gateway.clients, gateway.verifier, feed),
        http_handler=SubscriptionsOnlyHandler(),
        websocket_handler=AuthenticatingTransportWSHandler(gateway.verifier),
        **gateway.options,
    )
    return GatewayRouter(
        http=WSGIMiddleware(terminated_input(flask_app), workers=settings.WORKER_THREADS),
        websocket=websocket_app,
        gateway=gateway,
        listener=listener,
    )


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def terminated_input(app: WSGIApp) -> WSGIApp:
    """Tell werkzeug that a2wsgi ends the input stream where the request body ends.

    Without `wsgi.input_terminated` werkzeug reads nothing of a body that has no
    Content-Length (a chunked upload); a2wsgi's stream returns b"" at the body's end, or when
    the client goes away, so reading it is safe, up to the request's size limit.
    """

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return wsgi
