"""Settings of the GraphQL gateway, from the environment."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from shared.config import (
    CommonSettings,
    ConfigError,
    EnvVar,
    parse_bool,
    parse_list,
    service_url_var,
)
from shared.service_identity import parse_secret, service_secret_var

GIB = 1024**3


def parse_byte_count(raw: str) -> int:
    """A positive number of bytes."""
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive number of bytes")
    return value


def parse_networks(raw: str) -> list[str]:
    """A comma-separated list of IP addresses and CIDR ranges, each checked and normalised."""
    return [str(ipaddress.ip_network(item, strict=False)) for item in parse_list(raw)]


def parse_seconds(raw: str) -> float:
    """A positive number of seconds."""
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


class GatewaySettings(CommonSettings):
    """Everything the gateway reads from its environment."""

    AUTH_SERVICE_URL = service_url_var("auth", 8001)
    FILES_SERVICE_URL = service_url_var("files", 8002)
    TASKS_SERVICE_URL = service_url_var("tasks", 8003)
    # The gateway signs its calls to each service with that service's own secret.
    AUTH_SERVICE_SECRET = service_secret_var("auth")
    FILES_SERVICE_SECRET = service_secret_var("files")
    TASKS_SERVICE_SECRET = service_secret_var("tasks")
    HOST = EnvVar(
        "GATEWAY_HOST",
        default="127.0.0.1",
        doc="Address the gateway's public listener binds to (`python -m services.gateway.server`).",
    )
    PORT = EnvVar(
        "GATEWAY_PORT",
        int,
        default=8000,
        doc="Port of the gateway's public listener (`python -m services.gateway.server`).",
    )
    INTERNAL_HOST = EnvVar(
        "GATEWAY_INTERNAL_HOST",
        default="127.0.0.1",
        doc="Address of the gateway's operational listener (/healthz, /readyz, /metrics); "
        "keep it off the public network.",
    )
    INTERNAL_PORT = EnvVar(
        "GATEWAY_INTERNAL_PORT",
        int,
        default=8090,
        doc="Port of the gateway's operational listener (/healthz, /readyz, /metrics).",
    )
    REUSE_PORT = EnvVar(
        "GATEWAY_REUSE_PORT",
        parse_bool,
        default=True,
        doc="Bind both listeners with SO_REUSEPORT, so a new gateway process can start on the "
        "same ports beside the old one for a rolling restart on one host (docs/operations.md); "
        "only processes of the same user can share them.",
    )
    FORWARDED_ALLOW_IPS = EnvVar(
        "GATEWAY_FORWARDED_ALLOW_IPS",
        parse_networks,
        default=[],
        doc="Addresses and CIDR ranges of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto the gateway believes (comma-separated); empty: nobody's, the client "
        "address is the connection's peer. Set it to your proxy's address behind one.",
    )
    TLS_CERTFILE = EnvVar(
        "GATEWAY_TLS_CERTFILE",
        default=None,
        doc="PEM certificate chain: the public listener serves HTTPS (and sends HSTS) with it "
        "and GATEWAY_TLS_KEYFILE; unset: plain HTTP (TLS ends at a proxy, or development).",
    )
    TLS_KEYFILE = EnvVar(
        "GATEWAY_TLS_KEYFILE",
        default=None,
        doc="PEM private key of GATEWAY_TLS_CERTFILE.",
        secret=True,
    )
    HEADER_TIMEOUT = EnvVar(
        "GATEWAY_HEADER_TIMEOUT",
        parse_seconds,
        default=10.0,
        doc="Seconds a connection may take to send a request's headers (408 and close after).",
    )
    BODY_READ_TIMEOUT = EnvVar(
        "GATEWAY_BODY_READ_TIMEOUT",
        parse_seconds,
        default=10.0,
        doc="Seconds the gateway waits for each next piece of a request body (408 and close "
        "after).",
    )
    BODY_TIMEOUT = EnvVar(
        "GATEWAY_BODY_TIMEOUT",
        parse_seconds,
        default=30.0,
        doc="Seconds a whole request body may take, uploads (multipart) excepted: those are "
        "bounded by GATEWAY_BODY_READ_TIMEOUT per piece and FILES_MAX_UPLOAD_BYTES.",
    )
    MAX_CONNECTIONS_PER_CLIENT = EnvVar(
        "GATEWAY_MAX_CONNECTIONS_PER_CLIENT",
        int,
        default=32,
        doc="Most requests in progress plus open WebSockets one client address may have per "
        "gateway process (HTTP 429 beyond; 0: no cap).",
    )
    BLOCKED_IPS = EnvVar(
        "GATEWAY_BLOCKED_IPS",
        parse_networks,
        default=[],
        doc="Addresses and CIDR ranges refused with 403 before any work (comma-separated); "
        "`python -m services.gateway.blocklist` adds more at run time, kept in Redis.",
    )
    BLOCKLIST_REFRESH_SECONDS = EnvVar(
        "GATEWAY_BLOCKLIST_REFRESH_SECONDS",
        parse_seconds,
        default=5.0,
        doc="How often each gateway process reads the block list's entries from Redis.",
    )
    MAX_SUBSCRIPTIONS_PER_CONNECTION = EnvVar(
        "GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        int,
        default=20,
        doc="Most operations one WebSocket may have running (RATE_LIMITED beyond).",
    )
    MAX_SUBSCRIPTIONS_PER_USER = EnvVar(
        "GATEWAY_MAX_SUBSCRIPTIONS_PER_USER",
        int,
        default=100,
        doc="Most operations one user may have running over all their WebSockets to one "
        "gateway process (RATE_LIMITED beyond).",
    )
    GRAPHQL_INTROSPECTION = EnvVar(
        "GRAPHQL_INTROSPECTION",
        parse_bool,
        default=None,
        doc="Allow schema introspection and serve GraphiQL at GET /graphql; unset means on, "
        "except when DOCKYARD_ENV=production.",
    )
    GRAPHQL_MAX_DEPTH = EnvVar(
        "GRAPHQL_MAX_DEPTH",
        int,
        default=10,
        doc="Deepest field nesting an operation may select (introspection fields not counted).",
    )
    GRAPHQL_MAX_COST = EnvVar(
        "GRAPHQL_MAX_COST",
        int,
        default=1000,
        doc="Largest estimated cost of an operation: 1 per field, list fields multiplied by "
        "`first`, expensive fields (login, register, logs) weighted.",
    )
    GRAPHQL_MAX_ROOT_FIELDS = EnvVar(
        "GRAPHQL_MAX_ROOT_FIELDS",
        int,
        default=10,
        doc="Most top-level fields one operation may select; each alias counts as a field.",
    )
    GRAPHQL_MAX_TOKENS = EnvVar(
        "GRAPHQL_MAX_TOKENS",
        int,
        default=5000,
        doc="Most lexical tokens the parser reads from one query document.",
    )
    GRAPHQL_DOCUMENT_CACHE_SIZE = EnvVar(
        "GRAPHQL_DOCUMENT_CACHE_SIZE",
        int,
        default=256,
        doc="Parsed and validated query documents kept per process (0 turns the cache off).",
    )
    UPSTREAM_CONNECT_TIMEOUT = EnvVar(
        "GATEWAY_UPSTREAM_CONNECT_TIMEOUT",
        float,
        default=1.0,
        doc="Seconds the gateway waits to connect to a service before answering "
        "SERVICE_UNAVAILABLE.",
    )
    UPSTREAM_READ_TIMEOUT = EnvVar(
        "GATEWAY_UPSTREAM_READ_TIMEOUT",
        float,
        default=10.0,
        doc="Seconds the gateway waits for a service's answer before answering "
        "SERVICE_UNAVAILABLE.",
    )
    UPSTREAM_RETRIES = EnvVar(
        "GATEWAY_UPSTREAM_RETRIES",
        int,
        default=2,
        doc="Retries of idempotent (GET) calls to a service on connection errors and 502/503/504; "
        "other calls are never retried.",
    )
    UPSTREAM_POOL_SIZE = EnvVar(
        "GATEWAY_UPSTREAM_POOL_SIZE",
        int,
        default=32,
        doc="Most connections the gateway keeps open to each service; further calls wait for one.",
    )
    # Named like CommonSettings' attribute, which the REST services' apps read; its own variable
    # because the gateway's bodies (queries, uploads) differ from REST's.
    MAX_REQUEST_BYTES = EnvVar(
        "GATEWAY_MAX_REQUEST_BYTES",
        int,
        default=128 * 1024,
        doc="Largest request body the gateway accepts (PAYLOAD_TOO_LARGE, HTTP 413, above).",
    )
    # The files service's own variable: one setting makes both refuse a file at the same size
    # (the gateway stops passing a file on once it is too large, rather than leaving that to
    # a files service that would answer while the rest is still being sent).
    MAX_UPLOAD_BYTES = EnvVar(
        "FILES_MAX_UPLOAD_BYTES",
        parse_byte_count,
        default=GIB,
        doc="Largest file one upload may carry (413 PAYLOAD_TOO_LARGE above).",
    )
    UPLOAD_TIMEOUT = EnvVar(
        "GATEWAY_UPLOAD_TIMEOUT",
        float,
        default=60.0,
        doc="Seconds the gateway waits on the files service during an upload: for each write "
        "of the file, and for its answer after the last byte.",
    )

    DOWNLOAD_URL_SECRET = EnvVar(
        "GATEWAY_DOWNLOAD_URL_SECRET",
        parse_secret,
        default="development-only-gateway-download-url-secret-placeholder",
        doc="Signs File.downloadUrl links (HMAC-SHA256; 32+ characters, e.g. `openssl rand -hex "
        "32`); changing it ends every link handed out.",
        secret=True,
        dev_only_default=True,
    )
    DOWNLOAD_URL_TTL = EnvVar(
        "GATEWAY_DOWNLOAD_URL_TTL_SECONDS",
        parse_seconds,
        default=300,
        doc="Seconds a File.downloadUrl link stays valid.",
    )
    PUBLIC_URL = EnvVar(
        "GATEWAY_PUBLIC_URL",
        default="",
        doc="The gateway's public base URL (e.g. https://api.example.com) that File.downloadUrl "
        "links start with; empty: links are paths on the host the client called.",
    )

    def __init__(self, environ: Mapping[str, str] | None = None, **overrides: Any) -> None:
        super().__init__(environ, **overrides)
        if bool(self.TLS_CERTFILE) != bool(self.TLS_KEYFILE):
            raise ConfigError("GATEWAY_TLS_CERTFILE and GATEWAY_TLS_KEYFILE are set together")
        if self.GRAPHQL_INTROSPECTION is None:
            self.GRAPHQL_INTROSPECTION = self.environment != "production"
