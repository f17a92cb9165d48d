"""GraphQL over HTTP: Ariadne's ASGI handler with our body checks, limits, statuses and errors.

POST /graphql executes one operation sent as JSON, or as a GraphQL multipart request (an
upload, whose file is streamed through to the files service while it arrives); GET serves
GraphiQL while introspection is on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

from ariadne.asgi.handlers import GraphQLHTTPHandler
from ariadne.graphql import validate_data
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from services.gateway.cache_control import NO_STORE
from services.gateway.errors import INTERNAL_MESSAGE, error_entry
from services.gateway.executable import Gateway
from services.gateway.plumbing import send_error
from services.gateway.uploads import (
    MAX_FILES,
    MAX_PARTS,
    BodyIncomplete,
    BodyTooLarge,
    MultipartLimits,
    MultipartReader,
    MultipartRequestError,
)

log = logging.getLogger("dockyard.gateway")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MULTIPART = "multipart/form-data"
#: Headers a browser cannot add to a cross-site form post without a CORS preflight.
CSRF_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")


class MalformedRequest(Exception):
    """The body is not a GraphQL-over-HTTP request; answered 400 before any GraphQL runs."""


@lru_cache(maxsize=64)
def response_media_type(accept: str | None) -> str:
    """What to answer with for this Accept header (the GraphQL-over-HTTP spec's choice)."""
    # Without an Accept header, or one that does not name the newer type (`*/*`, a legacy
    # client), answer application/json.
    if not accept or GRAPHQL_RESPONSE not in accept:
        return JSON
    return parse_accept_header(accept, MIMEAccept).best_match([GRAPHQL_RESPONSE, JSON], JSON)


def nothing_executed(result: dict[str, Any]) -> bool:
    """Whether execution never started: parse, validation or variable errors."""
    if "data" not in result:
        return True
    return result["data"] is None and not any(e.get("path") for e in result.get("errors", ()))


def _json_response(
    body: dict[str, Any], status: int, media_type: str, cache_control: str = NO_STORE
) -> Response:
    # Not starlette's JSONResponse: the GraphQL response follows the query's field order, and
    # plain json.dumps is what the services (and the contract's examples) use.
    headers = {"Cache-Control": cache_control}
    retry_after = retry_after_of(body)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(json.dumps(body), status, headers, media_type)


def retry_after_of(result: dict[str, Any]) -> int | None:
    """The longest `extensions.retryAfter` among a result's errors, None when none has one.

    An executed operation answers 200 (the contract), so a service that asked for a pause
    (503 or 429 with Retry-After) is heard through this header as well as through the error.
    """
    delays = [
        error["extensions"]["retryAfter"]
        for error in result.get("errors") or ()
        if isinstance(error.get("extensions"), dict) and "retryAfter" in error["extensions"]
    ]
    return max(delays) if delays else None


def _error_response(message: str, code: str, status: int, media_type: str) -> Response:
    return _json_response({"errors": [error_entry(message, code)]}, status, media_type)


async def body_chunks(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives; BodyTooLarge past `limit`, BodyIncomplete on disconnect."""
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyIncomplete()
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge()
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


class GatewayHTTPHandler(GraphQLHTTPHandler):
    """Ariadne's HTTP handler held to the contract: statuses, media types, limits, error shape."""

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self.gateway = gateway
        self.settings = gateway.settings

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request to /graphql."""
        method = scope["method"]
        if method == "POST":
            request = Request(scope, receive)
            response = await self.graphql_http_server(request)
            await response(scope, receive, send)
        elif method == "GET" and self.introspection and self.explorer is not None:
            await HTMLResponse(self.explorer.html(None))(scope, receive, send)
        elif method == "GET":
            await send_error(send, 404, "Not found.")
        else:
            allow = "GET, POST, OPTIONS" if self.introspection else "POST, OPTIONS"
            if method == "OPTIONS":
                await Response(status_code=200, headers={"Allow": allow})(scope, receive, send)
            else:
                await send_error(send, 405, "Method not allowed.", headers={"Allow": allow})

    async def graphql_http_server(self, request: Request) -> Response:
        """Execute one operation; 200 once executed, even with errors."""
        media_type = response_media_type(request.headers.get("accept"))
        try:
            data = await self.read_operation(request)
        except BodyTooLarge:
            return _error_response(
                "Request body is too large.", "PAYLOAD_TOO_LARGE", 413, media_type
            )
        except MalformedRequest as exc:
            return _error_response(str(exc), "BAD_USER_INPUT", 400, media_type)
        try:
            _success, result = await self.execute_graphql_query(request, data)
        except Exception:
            log.exception("GraphQL processing failed outside any resolver")
            return _error_response(INTERNAL_MESSAGE, "INTERNAL_SERVER_ERROR", 500, media_type)
        status = 200
        # application/json clients (Apollo Client) read errors from a 200; the newer media type
        # lets us say 400 when nothing was executed, as the GraphQL-over-HTTP spec asks.
        if media_type == GRAPHQL_RESPONSE and nothing_executed(result):
            status = 400
            result.pop("data", None)
        return _json_response(result, status, media_type, self.add_cache_hints(data, result))

    def add_cache_hints(self, data: dict[str, Any], result: dict[str, Any]) -> str:
        """Put Apollo's cacheControl hints into an executed query's result; the header value."""
        if result.get("data") is None:
            return NO_STORE
        policy = self.gateway.cache_policy(data)
        if policy is None:
            return NO_STORE
        hints = policy.hints(result["data"])
        if hints:
            result.setdefault("extensions", {})["cacheControl"] = {"version": 1, "hints": hints}
        return NO_STORE if "errors" in result else policy.header()

    async def read_operation(self, request: Request) -> dict[str, Any]:
        """The operation in the body; MalformedRequest or BodyTooLarge when there is none."""
        content_type = request.headers.get("content-type", "")
        mimetype = content_type.partition(";")[0].strip().lower()
        if mimetype == JSON:
            data = await self._read_json(request)
        elif mimetype == MULTIPART:
            data = await self._read_multipart(request, content_type)
        else:
            raise MalformedRequest("Send the operation as application/json.")
        if isinstance(data, list):
            raise MalformedRequest("Batched operations are not supported; send one per request.")
        try:
            validate_data(data)
        except GraphQLError as exc:
            raise MalformedRequest(exc.message) from None
        return data

    async def _read_json(self, request: Request) -> Any:
        limit = self.settings.MAX_REQUEST_BYTES
        if (_declared_length(request) or 0) > limit:
            raise BodyTooLarge()
        try:
            body = b"".join([chunk async for chunk in body_chunks(request.receive, limit)])
        except BodyIncomplete:
            raise MalformedRequest("Request body is not valid JSON.") from None
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise MalformedRequest("Request body is not valid JSON.") from None

    async def _read_multipart(self, request: Request, content_type: str) -> Any:
        if not any(request.headers.get(name) for name in CSRF_HEADERS):
            raise MalformedRequest(
                "Multipart requests need an `apollo-require-preflight` or "
                "`x-apollo-operation-name` header."
            )
        settings = self.settings
        # The JSON limit is for operations; this body may carry a whole file. A declared length
        # over the limit is refused before anything is read.
        limit = settings.MAX_UPLOAD_BYTES * MAX_FILES + settings.MAX_REQUEST_BYTES
        if (_declared_length(request) or 0) > limit:
            raise BodyTooLarge()
        limits = MultipartLimits(
            max_file_bytes=settings.MAX_UPLOAD_BYTES,
            max_form_bytes=settings.MAX_REQUEST_BYTES,
            max_parts=MAX_PARTS,
        )
        try:
            reader = MultipartReader(
                body_chunks(request.receive, limit), content_type=content_type, limits=limits
            )
            return await reader.read_operation()
        except MultipartRequestError as exc:
            raise MalformedRequest(str(exc)) from None
