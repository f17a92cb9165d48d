"""What the gateway shares with every service's HTTP side, in ASGI: request ids, metrics, health.

The REST services get the same from `shared.web` (Flask): the same X-Request-ID handling, the
same metric names, the same JSON error shape `{status, code, message, fields}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.events import reset_correlation_id, set_correlation_id

access_log = logging.getLogger("dockyard.access")

#: Where the request's id is kept in the ASGI scope for the handlers.
REQUEST_ID_KEY = "dockyard.request_id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ERROR_CODES = {
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}

Check = Callable[[], Awaitable[None] | None]


def request_id_of(scope: Scope) -> str | None:
    """The id bound to this request by RequestPlumbing."""
    return scope.get(REQUEST_ID_KEY)


async def send_json(
    send: Send,
    body: Any,
    *,
    status: int = 200,
    media_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer with one JSON body."""
    content = json.dumps(body).encode()
    raw = [(b"content-type", media_type.encode()), (b"content-length", str(len(content)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})


async def send_error(
    send: Send,
    status: int,
    message: str,
    *,
    fields: dict[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer with the services' JSON error shape."""
    body: dict[str, Any] = {
        "status": status,
        "code": _ERROR_CODES.get(status, "INTERNAL_SERVER_ERROR"),
        "message": message,
    }
    if fields:
        body["fields"] = fields
    await send_json(send, body, status=status, headers=headers)


class RequestPlumbing:
    """ASGI middleware: X-Request-ID in and out, the log's request id, metrics, access log."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry, endpoints: set[str]) -> None:
        self.app = app
        self.endpoints = endpoints
        self.requests_total = Counter(
            "http_requests_total",
            "HTTP requests answered",
            ["method", "endpoint", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "endpoint"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request with its id bound, then count and time it."""
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or str(uuid.uuid4())
        scope[REQUEST_ID_KEY] = request_id
        token = set_correlation_id(request_id)
        status = 500
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method, path = scope["method"], scope["path"]
            endpoint = path if path in self.endpoints else "unmatched"
            self.requests_total.labels(method, endpoint, str(status)).inc()
            self.latency.labels(method, endpoint).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %s",
                    method,
                    endpoint,
                    status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
                )
            reset_correlation_id(token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            return incoming if _REQUEST_ID.match(incoming) else None
    return None


class HealthRoutes:
    """/healthz (the process answers), /readyz (every dependency answers), /metrics."""

    paths = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, *, registry: CollectorRegistry, readiness_checks: dict[str, Check]) -> None:
        self.registry = registry
        self.readiness_checks = readiness_checks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one of the three paths (GET or HEAD only)."""
        if scope["method"] not in ("GET", "HEAD"):
            await send_error(send, 405, "Method not allowed.", headers={"Allow": "GET, HEAD"})
        elif scope["path"] == "/healthz":
            await send_json(send, {"status": "ok"})
        elif scope["path"] == "/readyz":
            await self.readiness(send)
        else:
            content = generate_latest(self.registry)
            headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": content})

    async def readiness(self, send: Send) -> None:
        """Run every check; 503 naming the failed ones."""
        failures = {}
        for name, check in self.readiness_checks.items():
            try:
                if asyncio.iscoroutinefunction(check):
                    await check()
                else:
                    await asyncio.to_thread(check)
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                failures[name] = type(exc).__name__
        if failures:
            await send_error(send, 503, "Not ready.", fields=failures)
        else:
            await send_json(send, {"status": "ready", "checks": sorted(self.readiness_checks)})
