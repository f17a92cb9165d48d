"""The gateway's app factory: the only wiring point of its one ASGI app."""

from __future__ import annotations

from ariadne.asgi import GraphQL
from ariadne.explorer import ExplorerGraphiQL
from prometheus_client import CollectorRegistry

from services.gateway.blocklist import BlockList
from services.gateway.clients import Clients
from services.gateway.config import GatewaySettings
from services.gateway.context import context_factory
from services.gateway.downloads import DownloadLinks, DownloadRoute
from services.gateway.executable import Gateway, build_schema
from services.gateway.feed import EventFeed, EventListener
from services.gateway.handler import GatewayHTTPHandler
from services.gateway.plumbing import HealthRoutes
from services.gateway.security_headers import explorer_policy
from services.gateway.transport import GatewayApp
from services.gateway.websocket import AuthenticatingTransportWSHandler
from shared.auth import TokenVerifier, verifier_from_settings
from shared.health import redis_check
from shared.logging import configure_logging


def create_app(
    settings: GatewaySettings | None = None,
    *,
    clients: Clients | None = None,
    verifier: TokenVerifier | None = None,
    blocklist: BlockList | None = None,
) -> GatewayApp:
    """Build the gateway: /graphql over HTTP and WebSocket, signed downloads, health, metrics."""
    settings = settings or GatewaySettings()
    configure_logging("gateway", settings.LOG_LEVEL)
    clients = clients or Clients.from_settings(settings)
    verifier = verifier or verifier_from_settings(settings)
    gateway = Gateway(settings=settings, schema=build_schema(), clients=clients, verifier=verifier)
    feed = EventFeed()
    links = DownloadLinks(
        settings.DOWNLOAD_URL_SECRET, ttl=settings.DOWNLOAD_URL_TTL, base_url=settings.PUBLIC_URL
    )
    explorer = ExplorerGraphiQL(title="Dockyard GraphQL")
    graphql = GraphQL(
        gateway.schema,
        context_value=context_factory(clients, verifier, feed, download_links=links),
        http_handler=GatewayHTTPHandler(gateway),
        websocket_handler=AuthenticatingTransportWSHandler(
            verifier,
            max_per_connection=settings.MAX_SUBSCRIPTIONS_PER_CONNECTION,
            max_per_user=settings.MAX_SUBSCRIPTIONS_PER_USER,
        ),
        explorer=explorer,
        **gateway.options,
    )
    health = HealthRoutes(
        registry=CollectorRegistry(),
        readiness_checks={
            "redis": redis_check(verifier.revocations.client),
            "auth": clients.auth.check,
        },
    )
    return GatewayApp(
        gateway=gateway,
        graphql=graphql,
        health=health,
        listener=EventListener(feed, amqp_url=settings.AMQP_URL, namespace=settings.NAMESPACE),
        blocklist=blocklist or BlockList.from_settings(settings),
        html_policy=explorer_policy(explorer.html(None)),
        downloads=DownloadRoute(links, clients.files),
    )
