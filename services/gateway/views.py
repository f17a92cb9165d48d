"""The HTTP endpoint: POST /graphql executes an operation, GET /graphql serves GraphiQL."""

from __future__ import annotations

import json
import logging
from typing import Any

from ariadne.explorer import ExplorerGraphiQL
from ariadne.graphql import validate_data
from flask import Blueprint, Response, abort, current_app, g, request
from graphql import GraphQLError
from werkzeug.exceptions import RequestEntityTooLarge

from services.gateway.clients import Caller
from services.gateway.context import GatewayContext
from services.gateway.errors import INTERNAL_MESSAGE, error_entry
from services.gateway.executable import Gateway
from services.gateway.uploads import (
    MAX_FILES,
    MAX_PARTS,
    MultipartLimits,
    MultipartReader,
    MultipartRequestError,
)
from shared.auth import bearer_token

log = logging.getLogger("dockyard.gateway")

blp = Blueprint("graphql", __name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
#: Headers a browser cannot add to a cross-site form post without a CORS preflight.
CSRF_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")

_explorer = ExplorerGraphiQL(title="Dockyard GraphQL")


class MalformedRequest(Exception):
    """The body is not a GraphQL-over-HTTP request; answered 400 before any GraphQL runs."""


def _gateway() -> Gateway:
    return current_app.extensions["gateway"]


def _response_media_type() -> str:
    # The GraphQL-over-HTTP spec: without an Accept header, answer application/json.
    if not request.headers.get("Accept"):
        return JSON
    return request.accept_mimetypes.best_match([GRAPHQL_RESPONSE, JSON], default=JSON)


def _respond(body: dict[str, Any], status: int, media_type: str) -> Response:
    # Not flask.jsonify: it sorts keys, and a GraphQL response follows the query's field order.
    return Response(json.dumps(body), status=status, mimetype=media_type)


def _read_json_operation() -> Any:
    try:
        return json.loads(request.get_data(cache=False))
    except (ValueError, UnicodeDecodeError):
        raise MalformedRequest("Request body is not valid JSON.") from None


def _read_multipart_operation() -> Any:
    if not any(request.headers.get(name) for name in CSRF_HEADERS):
        raise MalformedRequest(
            "Multipart requests need an `apollo-require-preflight` or "
            "`x-apollo-operation-name` header."
        )
    settings = _gateway().settings
    # The app-wide limit is for JSON operations; this body may carry a whole file. The limits
    # apply before anything is read: a declared length over them is refused with 413.
    request.max_content_length = settings.MAX_UPLOAD_BYTES * MAX_FILES + settings.MAX_REQUEST_BYTES
    limits = MultipartLimits(
        max_file_bytes=settings.MAX_UPLOAD_BYTES,
        max_form_bytes=request.max_form_memory_size or settings.MAX_REQUEST_BYTES,
        max_parts=request.max_form_parts or MAX_PARTS,
    )
    try:
        reader = MultipartReader(
            request.stream, content_type=request.headers.get("Content-Type"), limits=limits
        )
        return reader.read_operation()
    except MultipartRequestError as exc:
        raise MalformedRequest(str(exc)) from None


def read_operation() -> dict[str, Any]:
    """The operation in the request body, or MalformedRequest (RequestEntityTooLarge)."""
    if request.mimetype == JSON:
        data = _read_json_operation()
    elif request.mimetype == "multipart/form-data":
        data = _read_multipart_operation()
    else:
        raise MalformedRequest("Send the operation as application/json.")
    if isinstance(data, list):
        raise MalformedRequest("Batched operations are not supported; send one per request.")
    try:
        validate_data(data)
    except GraphQLError as exc:
        raise MalformedRequest(exc.message) from None
    return data


def nothing_executed(result: dict[str, Any]) -> bool:
    """Whether execution never started: parse, validation or variable errors."""
    if "data" not in result:
        return True
    return result["data"] is None and not any(e.get("path") for e in result.get("errors", ()))


@blp.post("/graphql")
def execute_operation() -> Response:
    """Execute one GraphQL operation; 200 once executed, even with errors."""
    media_type = _response_media_type()
    try:
        data = read_operation()
    except RequestEntityTooLarge:
        body = {"errors": [error_entry("Request body is too large.", "PAYLOAD_TOO_LARGE")]}
        return _respond(body, 413, media_type)
    except MalformedRequest as exc:
        return _respond({"errors": [error_entry(str(exc), "BAD_USER_INPUT")]}, 400, media_type)

    gateway = _gateway()
    context = GatewayContext(
        caller=Caller(
            client_address=request.remote_addr,
            request_id=g.get("request_id"),
            token=bearer_token(request.headers.get("Authorization")),
        ),
        clients=gateway.clients,
        verifier=gateway.verifier,
    )
    try:
        _success, result = gateway.execute(data, context)
    except Exception:
        log.exception("GraphQL processing failed outside any resolver")
        body = {"errors": [error_entry(INTERNAL_MESSAGE, "INTERNAL_SERVER_ERROR")]}
        return _respond(body, 500, media_type)

    status = 200
    # application/json clients (Apollo Client) read errors from a 200; the newer media type
    # lets us say 400 when nothing was executed, as the GraphQL-over-HTTP spec asks.
    if media_type == GRAPHQL_RESPONSE and nothing_executed(result):
        status = 400
        result.pop("data", None)
    return _respond(result, status, media_type)


@blp.get("/graphql")
def explorer() -> Response:
    """GraphiQL, served only while introspection is on."""
    if not _gateway().settings.GRAPHQL_INTROSPECTION:
        abort(404)
    return Response(_explorer.html(None), mimetype="text/html")
