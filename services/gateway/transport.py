"""The gateway's one ASGI app: /graphql (HTTP and WebSocket) to Ariadne, plus health routes."""

from __future__ import annotations

import asyncio

from ariadne.asgi import GraphQL
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.executable import Gateway
from services.gateway.feed import EventListener
from services.gateway.plumbing import HealthRoutes, RequestPlumbing, send_error

GRAPHQL_PATH = "/graphql"
#: RFC 6455 "policy violation": a WebSocket on any other path.
POLICY_VIOLATION = 1008


class GatewayApp:
    """Route by scope type and path; start and stop the event listener with the server."""

    def __init__(
        self,
        *,
        gateway: Gateway,
        graphql: GraphQL,
        health: HealthRoutes,
        listener: EventListener,
    ) -> None:
        self.gateway = gateway
        self.graphql = graphql
        self.health = health
        self.listener = listener
        self.http: ASGIApp = RequestPlumbing(
            self.route_http, registry=health.registry, endpoints={GRAPHQL_PATH, *health.paths}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one connection."""
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            if scope["path"] == GRAPHQL_PATH:
                await self.graphql(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def route_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """/graphql to Ariadne's HTTP handler, the health routes, 404 for anything else."""
        path = scope["path"]
        if path == GRAPHQL_PATH:
            await self.graphql.http_handler.handle(scope, receive, send)
        elif path in self.health.paths:
            await self.health(scope, receive, send)
        else:
            await send_error(send, 404, "Not found.")

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
                await self.gateway.clients.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
