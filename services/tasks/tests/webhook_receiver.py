"""A real HTTP receiver of webhook deliveries on loopback: it checks signatures the way a user's
receiver would (HMAC over the raw body) and de-duplicates by idempotency key."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def signature_valid(secret: str, header: str, body: bytes, *, tolerance: float = 300) -> bool:
    """Whether `Dockyard-Signature: t=...,v1=...` signs `body` with `secret`, recently."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - timestamp) <= tolerance
    return fresh and hmac.compare_digest(expected.hexdigest(), parts["v1"])


@dataclass
class Received:
    """One POST: its headers, raw body and whether its signature held."""

    headers: dict[str, str]
    body: bytes
    signed: bool


@dataclass
class Receiver:
    """What the receiver saw, and how it answers."""

    secret: str = ""
    status: int = 200
    location: str | None = None
    #: Set: the first request waits until `release` is set, then gets no answer.
    hold_first: bool = False
    #: Longest a held request waits for `release`.
    hold_seconds: float = 60
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    received: list[Received] = field(default_factory=list)
    #: Idempotency keys accepted (answered 2xx) once each, in order.
    accepted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def keys(self) -> list[str]:
        """The idempotency key of every POST received, duplicates included."""
        return [r.headers.get("Dockyard-Idempotency-Key", "") for r in self.received]


def start_receiver(receiver: Receiver) -> ThreadingHTTPServer:
    """Serve `receiver` on a loopback port (its url is set); shut the server down after use."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name: value for name, value in self.headers.items()}
            signed = signature_valid(
                receiver.secret, headers.get("Dockyard-Signature", "t=0,v1="), body
            )
            with receiver.lock:
                receiver.received.append(Received(headers, body, signed))
                first = len(receiver.received) == 1
            if receiver.hold_first and first:
                receiver.holding.set()
                receiver.release.wait(receiver.hold_seconds)
                self.close_connection = True
                return
            key = headers.get("Dockyard-Idempotency-Key", "")
            if signed and 200 <= receiver.status < 300:
                with receiver.lock:
                    if key not in receiver.accepted:
                        receiver.accepted.append(key)
            self.send_response(receiver.status)
            if receiver.location:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/dockyard"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
