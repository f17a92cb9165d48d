"""How the gateway is served: `python -m services.gateway.server` (Procfile, compose).

One process, one event loop, two uvicorn servers over the same app objects:
- the public listener (GATEWAY_HOST:GATEWAY_PORT): /graphql and /healthz, over TLS when
  GATEWAY_TLS_CERTFILE/KEYFILE are set; uvicorn's own proxy-header handling is off (it would
  trust 127.0.0.1 by default): the app believes forwards only from GATEWAY_FORWARDED_ALLOW_IPS;
  a request's headers must arrive within GATEWAY_HEADER_TIMEOUT (uvicorn has no such limit);
- the internal listener (GATEWAY_INTERNAL_HOST:GATEWAY_INTERNAL_PORT): /healthz, /readyz and
  /metrics, which the public listener does not answer.
Either server stopping stops the other; SIGTERM or SIGINT stops both gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
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
        """HttpToolsProtocol with a deadline on each request's headers."""

        _header_timer: asyncio.TimerHandle | None = None

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

        def connection_lost(self, exc: Exception | None) -> None:
            """Forget the clock."""
            self._disarm_header_timer()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


class _Server(uvicorn.Server):
    """A uvicorn server leaving signals to the launcher, which stops every server it runs."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Nothing: `serve` installs one handler for all servers."""
        yield


def servers(settings: GatewaySettings) -> list[uvicorn.Server]:
    """The public and the internal server of one gateway."""
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
    return [_Server(public), _Server(internal)]


async def serve(settings: GatewaySettings) -> None:
    """Run both servers until a signal or until either one stops."""
    running = servers(settings)

    def stop(*_args: object) -> None:
        for server in running:
            if server.should_exit:
                server.force_exit = True  # a second signal: stop waiting for requests
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    tasks = [asyncio.create_task(server.serve()) for server in running]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
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
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
