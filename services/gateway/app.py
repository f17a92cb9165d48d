"""The gateway's app factory: the only wiring point of its HTTP side."""

from __future__ import annotations

from flask import Flask

from services.gateway.clients import Clients
from services.gateway.config import GatewaySettings
from services.gateway.executable import Gateway, build_schema
from services.gateway.uploads import MAX_PARTS
from services.gateway.views import blp
from shared.auth import verifier_from_settings
from shared.health import redis_check
from shared.web import create_service_app


def create_app(settings: GatewaySettings | None = None, *, clients: Clients | None = None) -> Flask:
    """Build the gateway: POST/GET /graphql plus health, readiness and metrics."""
    settings = settings or GatewaySettings()
    clients = clients or Clients.from_settings(settings)
    verifier = verifier_from_settings(settings)
    app, _api = create_service_app(
        "gateway",
        settings,
        title="Dockyard gateway",
        readiness_checks={
            "redis": redis_check(verifier.revocations.client),
            "auth": clients.auth.check,
        },
    )
    # Multipart (upload) requests: `operations` and `map` together are held to the size of a
    # JSON operation, and a request has those two parts and one file. The body's own limit
    # (a whole file) is set per request by the view.
    app.config.update(MAX_FORM_MEMORY_SIZE=settings.MAX_REQUEST_BYTES, MAX_FORM_PARTS=MAX_PARTS)
    app.extensions["gateway"] = Gateway(
        settings=settings, schema=build_schema(), clients=clients, verifier=verifier
    )
    app.register_blueprint(blp)
    return app
