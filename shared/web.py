"""What every Flask service shares: error format, request ids, health, readiness, metrics, docs."""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import flask
from flask import Flask, Response, g, jsonify, request
from flask_smorest import Blueprint
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError, OperationalError
from swagger_ui_bundle import swagger_ui_path
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from shared.config import CommonSettings
from shared.error_codes import ERROR_CODES, FALLBACK_CODE
from shared.events import reset_correlation_id, set_correlation_id
from shared.logging import configure_logging
from shared.openapi import ErrorSchema, LivenessSchema, ReadinessSchema, ServiceApi

log = logging.getLogger(__name__)
access_log = logging.getLogger("dockyard.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Where the Swagger UI page's scripts and styles are served from: this process, from the pinned
#: swagger-ui-bundle package, not a CDN (no third party runs code on the docs page).
SWAGGER_UI_ASSETS = "/docs/assets"


def error_body(
    status: int, message: str, *, code: str | None = None, fields: dict[str, str] | None = None
) -> dict[str, Any]:
    """The one JSON error shape of every service."""
    body: dict[str, Any] = {
        "status": status,
        "code": code or ERROR_CODES.get(status, FALLBACK_CODE),
        "message": message,
    }
    if fields:
        body["fields"] = fields
    return body


def error_response(status: int, message: str, **kwargs: Any) -> Response:
    """A JSON error response in the shared shape."""
    response = jsonify(error_body(status, message, **kwargs))
    response.status_code = status
    return response


def flatten_field_errors(messages: Any, prefix: str = "") -> dict[str, str]:
    """Turn marshmallow's nested {location: {field: [msg]}} into {"field": "msg"}."""
    flat: dict[str, str] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if not prefix and key in {"json", "query", "form", "files", "headers", "path_args"}:
                flat.update(flatten_field_errors(value, ""))
                continue
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_field_errors(value, name))
    elif isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            flat[prefix or "_schema"] = " ".join(messages)
        else:
            for item in messages:
                flat.update(flatten_field_errors(item, prefix))
    else:
        flat[prefix or "_schema"] = str(messages)
    return flat


class Parser(FlaskParser):
    """webargs parser answering 400 (not 422) for invalid input, like every other bad request."""

    DEFAULT_VALIDATION_STATUS = 400

    def handle_invalid_json_error(self, error, req, *args, **kwargs):
        """Malformed JSON is a 400 with a clear message, not a crash."""
        from flask_smorest import abort

        abort(400, message="Request body is not valid JSON.")


class ServiceBlueprint(Blueprint):
    """flask-smorest Blueprint using the 400-answering parser."""

    ARGUMENTS_PARSER = Parser()


def _request_id_from_header() -> str:
    incoming = request.environ.get("HTTP_X_REQUEST_ID")
    if incoming and _REQUEST_ID.match(incoming):
        return incoming
    # A correlation id, not a secret: uuid4() would read os.urandom, a system call per request
    # (the random module reseeds itself in every forked worker).
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


class ServiceFlask(Flask):
    """Flask that tells a hook or view is synchronous once, not on every call.

    Flask asks `inspect.iscoroutinefunction` of every hook and view on every request (ten
    times a request here), which cost a visible share of a short request such as auth's `me`.
    """

    #: Functions remembered at most (hooks and views are a few dozen; never a per-request one).
    max_known = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._known_sync: set[Callable[..., Any]] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """`func` itself when it is a plain function, else Flask's wrapper for it."""
        if func in self._known_sync:
            return func
        wrapped = super().ensure_sync(func)
        if wrapped is func and len(self._known_sync) < self.max_known:
            self._known_sync.add(func)
        return wrapped


def create_service_app(
    name: str,
    settings: CommonSettings,
    *,
    title: str,
    readiness_checks: dict[str, Callable[[], None]] | None = None,
    collectors: list[Any] | None = None,
) -> tuple[Flask, ServiceApi]:
    """Build a Flask app with the shared plumbing and an OpenAPI-publishing Api."""
    configure_logging(name, settings.LOG_LEVEL)
    app = ServiceFlask(name)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.MAX_REQUEST_BYTES,
        API_TITLE=title,
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_ASSETS + "/",
        JSON_SORT_KEYS=False,
    )
    app.extensions["dockyard_settings"] = settings
    api = ServiceApi(app)
    app.register_blueprint(
        flask.Blueprint(
            "swagger_ui_assets",
            __name__,
            static_folder=swagger_ui_path,
            static_url_path=SWAGGER_UI_ASSETS,
        )
    )
    registry = CollectorRegistry()
    app.extensions["metrics_registry"] = registry
    requests_total = _CachedLabels(
        Counter(
            "http_requests_total",
            "HTTP requests answered",
            ["method", "endpoint", "status"],
            registry=registry,
        )
    )
    latency = _CachedLabels(
        Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "endpoint"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
    )
    for collector in collectors or []:
        registry.register(collector)

    # These hooks run on every request: each reads `g` and `request` through their proxies once.
    @app.before_request
    def _bind_request_id() -> None:
        request_globals = g._get_current_object()
        request_globals.request_id = request_id = _request_id_from_header()
        request_globals.request_id_token = set_correlation_id(request_id)
        request_globals.started_at = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_globals, current = g._get_current_object(), request._get_current_object()
        response.headers["X-Request-ID"] = request_globals.get("request_id", "")
        rule, method, status = current.url_rule, current.method, response.status_code
        endpoint = rule.rule if rule else "unmatched"
        requests_total.labels(method, endpoint, str(status)).inc()
        started_at = request_globals.get("started_at")
        if started_at is not None:
            elapsed = time.perf_counter() - started_at
            latency.labels(method, endpoint).observe(elapsed)
            access_log.info(
                "%s %s %s",
                method,
                endpoint,
                status,
                extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
            )
        return response

    @app.teardown_request
    def _unbind_request_id(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            reset_correlation_id(token)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        data = getattr(exc, "data", None) or {}
        status = exc.code or 500
        fields = flatten_field_errors(data["messages"]) if "messages" in data else None
        message = data.get("message") or _default_message(status, exc, fields)
        response = error_response(status, message, code=data.get("code"), fields=fields)
        for key, value in (data.get("headers") or {}).items():
            response.headers[key] = value
        for key, value in (getattr(exc, "response", None) and exc.response.headers or {}).items():
            if key.lower() in {"retry-after", "www-authenticate", "allow"}:
                response.headers[key] = value
        return response

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response:
        # Connections are not pinged before every use (shared.db.make_engine), so a database
        # restart reaches the requests in flight: they answer a retryable 503, not a 500.
        if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
            return _unexpected(exc)
        log.warning("database unavailable: %s", exc.orig)
        response = error_response(503, "The database is temporarily unavailable.")
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "Internal server error.")

    health = Blueprint("health", __name__, description="Liveness, readiness and metrics")

    @health.route("/healthz")
    @health.doc(summary="Liveness: the process answers.")
    @health.response(200, LivenessSchema)
    def healthz():
        """Liveness: the process answers."""
        return {"status": "ok"}

    @health.route("/readyz")
    @health.doc(summary="Readiness: database and broker reachable.")
    @health.response(200, ReadinessSchema)
    @health.alt_response(
        503,
        schema=ErrorSchema,
        description="Not ready: `fields` names each failed check with the error it raised.",
    )
    def readyz():
        """Readiness: every dependency answers."""
        failures = {}
        for check_name, check in (readiness_checks or {}).items():
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                failures[check_name] = type(exc).__name__
        if failures:
            return error_response(503, "Not ready.", fields=failures)
        return {"status": "ready", "checks": sorted(readiness_checks or {})}

    @health.route("/metrics")
    @health.doc(
        summary="Prometheus metrics.",
        responses={
            "200": {
                "description": "Prometheus text exposition format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    def metrics():
        """Prometheus metrics of this process."""
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    api.register_blueprint(health)
    return app, api


class _CachedLabels:
    """A labelled metric whose children are looked up in a plain dict after the first time.

    prometheus_client validates the labels and takes a lock on every `labels()` call; the label
    sets of HTTP metrics (method, route, status) are few and repeat on every request.
    """

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        """The child metric of these label values."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


def _default_message(status: int, exc: HTTPException, fields: dict[str, str] | None) -> str:
    if fields:
        if set(fields) == {"_schema"}:
            return fields["_schema"]
        return "Invalid input: " + "; ".join(f"{k}: {v}" for k, v in sorted(fields.items()))
    if status == 413:
        return "Request body is too large."
    if status == 404:
        return "Not found."
    if status == 405:
        return "Method not allowed."
    return exc.description or exc.name


#: Owner-only answers: never in shared caches, and revalidated (cheaply, by ETag) before reuse.
PRIVATE_REVALIDATED = "private, no-cache"


def revalidate_json_reads(response: Response) -> Response:
    """Give a whole JSON read an ETag of its body, and answer a matching If-None-Match 304.

    Registered with `blueprint.after_request`. The ETag hashes exactly what the answer shows, so
    any change a client could see changes it; errors (a stranger's 404), other media and
    streams get none, and the view has run first, so ownership is decided before any 304.
    """
    if request.method != "GET" or response.status_code != 200 or response.is_streamed:
        return response
    if response.mimetype != "application/json":
        return response
    response.add_etag()
    response.headers["Cache-Control"] = PRIVATE_REVALIDATED
    return response.make_conditional(request)
