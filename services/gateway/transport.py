"""The gateway's ASGI apps: the public one (/graphql over HTTP and WebSocket, /healthz, signed
download links under /files/) behind
its edge middleware, and the operational one (/healthz, /readyz, /metrics) for the internal
listener.

Edge middleware, outermost first: the client's address from a trusted proxy's forward (only
GATEWAY_FORWARDED_ALLOW_IPS are believed), security headers, the block list, the per-address
cap on open requests and WebSockets, the request body deadline; then request ids and metrics.
"""

from __future__ import annotations

import asyncio

from ariadne.asgi import GraphQL
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from services.gateway.blocklist import Blocking, BlockList
from services.gateway.downloads import PATH_PREFIX as DOWNLOAD_PREFIX
from services.gateway.downloads import DownloadRoute
from services.gateway.executable import Gateway
from services.gateway.feed import EventListener
from services.gateway.guards import BodyDeadline, ClientConnectionLimit
from services.gateway.plumbing import HealthRoutes, RequestPlumbing, send_error
from services.gateway.security_headers import SecurityHeaders

GRAPHQL_PATH = "/graphql"
#: The only operational path the public listener answers: liveness says nothing about anything.
PUBLIC_HEALTH_PATH = "/healthz"
#: RFC 6455 "policy violation": a WebSocket on any other path.
POLICY_VIOLATION = 1008


class GatewayApp:
    """The public app: edge middleware, then routing by scope type and path; its lifespan
    starts and stops the event listener and the block list's refresh."""

    def __init__(
        self,
        *,
        gateway: Gateway,
        graphql: GraphQL,
        health: HealthRoutes,
        listener: EventListener,
        blocklist: BlockList,
        html_policy: str | None = None,
        downloads: DownloadRoute | None = None,
    ) -> None:
        self.gateway = gateway
        self.graphql = graphql
        self.health = health
        self.listener = listener
        self.blocklist = blocklist
        self.downloads = downloads
        settings = gateway.settings
        self.http: ASGIApp = RequestPlumbing(
            self.route_http,
            registry=health.registry,
            endpoints={GRAPHQL_PATH, *health.paths},
        )
        edge: ASGIApp = BodyDeadline(
            self.dispatch,
            read_timeout=settings.BODY_READ_TIMEOUT,
            body_timeout=settings.BODY_TIMEOUT,
        )
        edge = ClientConnectionLimit(edge, limit=settings.MAX_CONNECTIONS_PER_CLIENT)
        edge = Blocking(edge, blocklist=blocklist, registry=health.registry)
        edge = SecurityHeaders(edge, html_policy=html_policy)
        if settings.FORWARDED_ALLOW_IPS:
            edge = ProxyHeadersMiddleware(edge, trusted_hosts=settings.FORWARDED_ALLOW_IPS)
        self.edge = edge
        #: What the internal listener serves.
        self.operations = OperationsApp(health)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection through the edge middleware, or the server's lifespan."""
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        else:
            await self.edge(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HTTP through the request plumbing; WebSockets on /graphql only."""
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            if scope["path"] == GRAPHQL_PATH:
                await self.graphql(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})

    async def route_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """/graphql to Ariadne's HTTP handler, /healthz, signed downloads, 404 for the rest."""
        path = scope["path"]
        if path == GRAPHQL_PATH:
            await self.graphql.http_handler.handle(scope, receive, send)
        elif path == PUBLIC_HEALTH_PATH:
            await self.health(scope, receive, send)
        elif self.downloads is not None and path.startswith(DOWNLOAD_PREFIX):
            await self.downloads(scope, receive, send)
        else:
            await send_error(send, 404, "Not found.")

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Start the event listener; on shutdown stop it and close the upstream connections."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # It connects in its own thread: start-up never waits for RabbitMQ.
                self.listener.start(asyncio.get_running_loop())
                await self.blocklist.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.listener.stop)
                await self.blocklist.stop()
                await self.gateway.clients.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


class OperationsApp:
    """The internal listener's app: /healthz, /readyz and /metrics; 404 for anything else."""

    def __init__(self, health: HealthRoutes) -> None:
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one of the health paths over HTTP; nothing else is served here."""
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
            return
        if scope["path"] in self.health.paths:
            await self.health(scope, receive, send)
        else:
            await send_error(send, 404, "Not found.")
