"""Limits on how a client holds the gateway: a deadline on request bodies, a cap per address.

A slow client must not pin the gateway: a body that stops arriving, or arrives a byte at a
time, ends in 408 and a closed connection; one address cannot keep more than its share of
requests and WebSockets open at once. (A request's headers are bounded in the server:
services/gateway/server.py.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.plumbing import send_error

log = logging.getLogger("dockyard.gateway.guards")

#: RFC 6455 "try again later": a WebSocket over its address's cap.
TRY_AGAIN_LATER = 1013


def client_host(scope: Scope) -> str | None:
    """The client address the gateway determined: a trusted proxy's forward, or the peer."""
    client = scope.get("client")
    return client[0] if client else None


def _is_multipart(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.lower().startswith(b"multipart/")
    return False


class BodyDeadline:
    """ASGI middleware: each piece of a request body within `read_timeout`, the whole in time.

    The whole-body deadline (`body_timeout`) spares multipart requests, which carry files of up
    to FILES_MAX_UPLOAD_BYTES; each of their pieces still has `read_timeout`. When a deadline
    passes, the app sees the client disconnect (so it abandons whatever it was doing with the
    body, an upload included) and the client gets 408 with `Connection: close` instead of the
    app's answer.
    """

    def __init__(self, app: ASGIApp, *, read_timeout: float, body_timeout: float) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request with its body under the deadlines."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        whole_by = None if _is_multipart(scope) else loop.time() + self.body_timeout
        timed_out = body_read = started = False

        async def timed_receive() -> Message:
            nonlocal timed_out, body_read
            if timed_out:
                return {"type": "http.disconnect"}
            if body_read:
                return await receive()  # only a disconnect is left to come: no deadline
            wait = self.read_timeout
            if whole_by is not None:
                wait = max(0.0, min(wait, whole_by - loop.time()))
            try:
                async with asyncio.timeout(wait):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                log.info("request body too slow from %s; answering 408", client_host(scope))
                return {"type": "http.disconnect"}
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_read = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _request_timeout(send)
                return  # the app's answer to a request it never received whole
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, timed_receive, guarded_send)
        if timed_out and not started:
            await _request_timeout(send)


async def _request_timeout(send: Send) -> None:
    await send_error(
        send, 408, "The request body did not arrive in time.", headers={"Connection": "close"}
    )


class ClientConnectionLimit:
    """ASGI middleware: at most `limit` requests in progress plus open WebSockets per address.

    Counted in this process, by the address the gateway determined for the client (so behind a
    trusted proxy, by the forwarded one). Beyond the cap HTTP answers 429 and a WebSocket is
    refused before its handshake completes.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.open: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the connection if its address is under the cap; refuse it otherwise."""
        host = client_host(scope)
        if scope["type"] not in ("http", "websocket") or not self.limit or host is None:
            await self.app(scope, receive, send)
            return
        if self.open[host] >= self.limit:
            log.warning("client %s is over its %d open connections; refused", host, self.limit)
            if scope["type"] == "http":
                await send_error(
                    send,
                    429,
                    "Too many requests in progress from your address.",
                    headers={"Retry-After": "1"},
                )
            else:
                await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
            return
        self.open[host] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open[host] -= 1
            if not self.open[host]:
                del self.open[host]
