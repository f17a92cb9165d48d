"""Signed download links: File.downloadUrl, and the route that serves them without a token.

A link names a file, its owner and an expiry, signed with HMAC-SHA256 under the gateway's
GATEWAY_DOWNLOAD_URL_SECRET. The route checks the signature (in constant time) and the expiry,
then streams the content from the files service's download endpoint, acting for the link's
user with a service credential; Range, If-Range and If-None-Match go through, and the answer's
status (200, 206, 304, 416...), validators and download headers come back unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
import uuid
from urllib.parse import parse_qs, urlencode

import aiohttp
from starlette.types import Receive, Scope, Send

from services.gateway.clients import Caller, FilesClient
from services.gateway.errors import GatewayError
from services.gateway.plumbing import request_id_of, send_error, send_json

log = logging.getLogger("dockyard.gateway.downloads")

#: The route's paths: /files/<file id>/content.
PATH_PREFIX = "/files/"
_PATH = re.compile(r"^/files/([0-9a-fA-F-]{36})/content$")
#: Request headers passed on to the files service: conditional and partial requests.
_FORWARDED_REQUEST_HEADERS = (b"range", b"if-range", b"if-none-match", b"if-modified-since")
#: Response headers relayed from the files service: the content's, its validators, and the
#: download headers (attachment, nosniff, sandbox CSP) that keep it from running as our page.
_RELAYED_RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-range",
        "accept-ranges",
        "etag",
        "last-modified",
        "cache-control",
        "content-disposition",
        "x-content-type-options",
        "content-security-policy",
    }
)
_CHUNK_BYTES = 64 * 1024


class LinkRefused(Exception):
    """A download link that is not ours, was altered, or has expired."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class DownloadLinks:
    """Mints and checks signed download links."""

    def __init__(self, secret: str, *, ttl: float, base_url: str = "") -> None:
        self._key = secret.encode()
        self.ttl = ttl
        self.base_url = base_url.rstrip("/")

    def _signature(self, file_id: str, owner_id: str, expires: str) -> str:
        message = f"{file_id}\n{owner_id}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def url_for(self, *, file_id: str, owner_id: str, now: float | None = None) -> str:
        """A link to the file's content for its owner, valid for the configured seconds."""
        file_id, owner_id = str(uuid.UUID(file_id)), str(uuid.UUID(owner_id))
        expires = str(int((time.time() if now is None else now) + self.ttl))
        signature = self._signature(file_id, owner_id, expires)
        query = urlencode({"user": owner_id, "expires": expires, "sig": signature})
        return f"{self.base_url}{PATH_PREFIX}{file_id}/content?{query}"

    def verify(self, *, file_id: str, query_string: bytes, now: float | None = None) -> str:
        """The owner a link was signed for; raise LinkRefused when altered or expired."""
        params = parse_qs(query_string.decode("latin-1"), max_num_fields=8)
        values = [params.get(name, [""])[0] for name in ("user", "expires", "sig")]
        owner_id, expires, signature = values
        expected = self._signature(file_id.lower(), owner_id, expires)
        # The signature is checked before anything else is read from the link, in constant time.
        if not hmac.compare_digest(expected.encode(), signature.encode("latin-1")):
            raise LinkRefused(403, "FORBIDDEN", "This download link is not valid.")
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            raise LinkRefused(410, "LINK_EXPIRED", "This download link has expired; get a new one.")
        return owner_id


class DownloadRoute:
    """ASGI endpoint of signed links: GET (or HEAD) /files/<id>/content, no token needed."""

    def __init__(self, links: DownloadLinks, files: FilesClient) -> None:
        self.links = links
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the link, then stream the file's content from the files service."""
        match = _PATH.match(scope["path"])
        if match is None:
            await send_error(send, 404, "Not found.")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_error(send, 405, "Method not allowed.", headers={"Allow": "GET, HEAD"})
            return
        try:
            owner_id = self.links.verify(
                file_id=match.group(1), query_string=scope.get("query_string", b"")
            )
        except LinkRefused as exc:
            body = {"status": exc.status, "code": exc.code, "message": exc.message}
            await send_json(send, body, status=exc.status, headers={"Cache-Control": "no-store"})
            return
        client = scope.get("client")
        caller = Caller(
            client_address=client[0] if client else None, request_id=request_id_of(scope)
        )
        wanted = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name.lower() in _FORWARDED_REQUEST_HEADERS
        }
        started = False
        try:
            async with self.files.open_content(
                caller,
                file_id=match.group(1),
                owner_id=owner_id,
                method=scope["method"],
                headers=wanted,
            ) as upstream:
                headers = [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in upstream.headers.items()
                    if name.lower() in _RELAYED_RESPONSE_HEADERS
                ]
                await send(
                    {"type": "http.response.start", "status": upstream.status, "headers": headers}
                )
                started = True
                await _relay_until_disconnect(upstream, receive, send)
        except GatewayError as exc:
            if started:
                # The answer is under way: leaving it unfinished makes the server drop the
                # connection, so the client sees a broken download, never a short one.
                log.warning("download of file %s broke off: %s", match.group(1), exc.message)
                return
            await send_error(send, 503, exc.message, headers={"Retry-After": "5"})


async def _relay(upstream: aiohttp.ClientResponse, send: Send) -> None:
    async for chunk in upstream.content.iter_chunked(_CHUNK_BYTES):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _relay_until_disconnect(
    upstream: aiohttp.ClientResponse, receive: Receive, send: Send
) -> None:
    """Pass the body on as it comes; stop reading it once the client has gone away."""
    # The server drops what is sent after a disconnect without a word: unwatched, a client
    # that left would still cost the rest of the file's reading from the files service.
    relay = asyncio.ensure_future(_relay(upstream, send))
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({relay, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relay, gone):
            task.cancel()
        await asyncio.gather(relay, gone, return_exceptions=True)
    if relay.done() and not relay.cancelled() and relay.exception() is not None:
        raise relay.exception()
