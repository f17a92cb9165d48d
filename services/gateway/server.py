"""How the gateway is served: `python -m services.gateway.server` (Procfile, compose).

One process, one event loop, two uvicorn servers over the same app objects:
- the public listener (GATEWAY_HOST:GATEWAY_PORT): /graphql and /healthz, over TLS when
  GATEWAY_TLS_CERTFILE/KEYFILE are set; uvicorn's own proxy-header handling is off (it would
  trust 127.0.0.1 by default): the app believes forwards only from GATEWAY_FORWARDED_ALLOW_IPS;
  a request's headers must arrive within GATEWAY_HEADER_TIMEOUT (uvicorn has no such limit);
- the internal listener (GATEWAY_INTERNAL_HOST:GATEWAY_INTERNAL_PORT): /healthz, /readyz and
  /metrics, which the public listener does not answer.
Either server stopping stops the other; SIGTERM or SIGINT stops both gracefully: each closes
its listener, answers the requests in flight and the ones on their way over connections it has
accepted, then exits.

The gateway binds its sockets itself (uvicorn has no SO_REUSEPORT option): with
GATEWAY_REUSE_PORT a second gateway can listen on the same ports beside the first, which is how
one host restarts it without refusing a connection (docs/operations.md, "Restarting the gateway
on one host"). A socket joins the kernel's share of connections only once its server starts
serving, after the app's start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
from collections.abc import Iterator

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from shared.config import ConfigError

log = logging.getLogger("dockyard.gateway.server")

#: Seconds in-flight requests get to finish once a stop is asked for.
GRACEFUL_SHUTDOWN_SECONDS = 5
_TIMEOUT_BODY = json.dumps(
    {"status": 408, "code": "REQUEST_TIMEOUT", "message": "The request did not arrive in time."}
).encode()
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


def header_timeout_protocol(timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing a connection whose request headers are too slow.

    The timer runs from the connection's start, and for each later request on it from its
    first byte, until its headers are complete; it answers 408 and closes. (uvicorn's
    keep-alive timeout only covers the silence between requests.)
    """

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        """HttpToolsProtocol with a deadline on each request's headers, and a gentler stop."""

        _header_timer: asyncio.TimerHandle | None = None
        _last_request = False

        def _arm_header_timer(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(timeout, self._headers_timed_out)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_timed_out(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            """Start the clock on the first request's headers."""
            super().connection_made(transport)
            self._arm_header_timer()

        def on_message_begin(self) -> None:
            """A request begins: its headers are on the clock."""
            super().on_message_begin()
            self._arm_header_timer()

        def on_headers_complete(self) -> None:
            """Headers in time: stop the clock; the app's body deadline takes over."""
            self._disarm_header_timer()
            super().on_headers_complete()
            if self._last_request and self.cycle is not None:
                self.cycle.keep_alive = False

        def shutdown(self) -> None:
            """The server stops: close once the request on its way, if any, is answered.

            uvicorn closes at once a connection with no request being handled, which drops a
            connection just accepted whose request has not arrived yet, or whose headers are
            half read: while their header clock runs, such requests are still answered (with
            `Connection: close`). Only an idle kept-alive connection is closed at once, the
            race every HTTP/1.1 client retries.
            """
            if self._header_timer is None:
                super().shutdown()
            else:
                self._last_request = True

        def connection_lost(self, exc: Exception | None) -> None:
            """Forget the clock."""
            self._disarm_header_timer()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def bound_sockets(host: str, port: int, *, reuse_port: bool) -> list[socket.socket]:
    """TCP sockets bound to each address of `host` on `port`, not yet listening.

    As asyncio's `create_server(host, port)` binds them, with SO_REUSEPORT when asked;
    listening is left to the server, once it is ready to serve.
    """
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound


class _Server(uvicorn.Server):
    """A uvicorn server on sockets bound beforehand, leaving signals to the launcher."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config)
        self.sockets = sockets
        #: Set once the server accepts connections.
        self.serving = asyncio.Event()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on this server's own sockets."""
        await super().serve(sockets=self.sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, and say where (uvicorn does not, given sockets)."""
        await super().startup(sockets=sockets)
        if self.started:
            self.serving.set()
            scheme = "https" if self.config.is_ssl else "http"
            for sock in self.sockets:
                host, port = sock.getsockname()[:2]
                log.info("Serving on %s://%s:%d", scheme, host, port)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Nothing: `serve` installs one handler for all servers."""
        yield


def listeners(settings: GatewaySettings) -> tuple[list[socket.socket], list[socket.socket]]:
    """The public and the internal listener's sockets, bound."""
    public = bound_sockets(settings.HOST, settings.PORT, reuse_port=settings.REUSE_PORT)
    try:
        internal = bound_sockets(
            settings.INTERNAL_HOST, settings.INTERNAL_PORT, reuse_port=settings.REUSE_PORT
        )
    except OSError:
        for sock in public:
            sock.close()
        raise
    return public, internal


def servers(
    settings: GatewaySettings,
    public_sockets: list[socket.socket],
    internal_sockets: list[socket.socket],
) -> list[_Server]:
    """The public and the internal server of one gateway, on their bound sockets."""
    app = create_app(settings)
    log_level = settings.LOG_LEVEL.lower()
    public = uvicorn.Config(
        app,
        host=settings.HOST,
        port=settings.PORT,
        http=header_timeout_protocol(settings.HEADER_TIMEOUT),
        proxy_headers=False,
        ssl_certfile=settings.TLS_CERTFILE,
        ssl_keyfile=settings.TLS_KEYFILE,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="on",
        log_level=log_level,
    )
    internal = uvicorn.Config(
        app.operations,
        host=settings.INTERNAL_HOST,
        port=settings.INTERNAL_PORT,
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="off",
        access_log=False,
        log_level=log_level,
    )
    return [_Server(public, public_sockets), _Server(internal, internal_sockets)]


async def serve(
    settings: GatewaySettings,
    public_sockets: list[socket.socket],
    internal_sockets: list[socket.socket],
) -> None:
    """Run both servers until a signal or until either one stops."""
    running = servers(settings, public_sockets, internal_sockets)

    def stop(*_args: object) -> None:
        for server in running:
            if server.should_exit:
                server.force_exit = True  # a second signal: stop waiting for requests
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    public, internal = running
    tasks = [asyncio.create_task(public.serve())]
    public_serving = asyncio.create_task(public.serving.wait())
    try:
        # The internal listener (probes) opens once the public one serves: a gateway that
        # answers /readyz already takes its share of connections, which a restart waits for.
        await asyncio.wait([tasks[0], public_serving], return_when=asyncio.FIRST_COMPLETED)
        if public.serving.is_set() and not internal.should_exit:
            tasks.append(asyncio.create_task(internal.serve()))
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        public_serving.cancel()
        for server in running:
            server.should_exit = True
        await asyncio.gather(*tasks)


def main() -> int:
    """`python -m services.gateway.server`: serve the gateway as its settings say."""
    try:
        settings = GatewaySettings()
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    try:
        public_sockets, internal_sockets = listeners(settings)
    except OSError as exc:
        print(f"gateway: cannot listen: {exc}", file=sys.stderr)
        return 3
    asyncio.run(serve(settings, public_sockets, internal_sockets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
